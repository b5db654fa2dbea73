//! The issuer's published keys, fetched when first needed and again when a token names a key
//! not seen yet (the issuer rotated its keys), at most once a minute, so that a flood of
//! tokens with made-up key ids cannot make us hammer the issuer. A fetch that fails leaves
//! the keys as they were: tokens signed with unknown keys are then refused (fails closed).

use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The shortest time between two fetches.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);

pub struct IssuerKeys {
    url: String,
    /// Built on the first fetch: its TLS set-up (the CA bundle) stays off the cold start.
    client: std::sync::OnceLock<reqwest::Client>,
    refetch_after: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
}

impl IssuerKeys {
    pub fn new(url: String) -> Self {
        Self::refetching_after(url, REFETCH_AFTER)
    }

    /// As [`IssuerKeys::new`], with another shortest time between fetches.
    pub fn refetching_after(url: String, refetch_after: Duration) -> Self {
        Self {
            url,
            client: std::sync::OnceLock::new(),
            refetch_after,
            state: Mutex::new(State::default()),
        }
    }

    /// The keys as last fetched, fetching them if never done.
    pub async fn current(&self) -> Option<Arc<JwkSet>> {
        let mut state = self.state.lock().await;
        if state.keys.is_none() {
            self.fetch_into(&mut state).await;
        }
        state.keys.clone()
    }

    /// Fetches again if the last fetch is old enough (a minute by default); the keys either way.
    pub async fn refresh(&self) -> Option<Arc<JwkSet>> {
        let mut state = self.state.lock().await;
        if state
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.refetch_after)
        {
            self.fetch_into(&mut state).await;
        }
        state.keys.clone()
    }

    async fn fetch_into(&self, state: &mut State) {
        state.fetched_at = Some(Instant::now());
        let fetched = async {
            self.client
                .get_or_init(reqwest::Client::new)
                .get(&self.url)
                .timeout(Duration::from_secs(3))
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        };
        match fetched.await {
            Ok(keys) => state.keys = Some(Arc::new(keys)),
            Err(e) => tracing::error!(error = %e, "the issuer's keys could not be fetched"),
        }
    }
}
