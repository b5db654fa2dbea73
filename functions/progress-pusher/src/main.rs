//! Lambda entry point of the progress pusher: its settings are checked before the first
//! poll; its clients and secrets are built while that poll waits.

use aws_adapters::startup::Warming;
use aws_adapters::ws_push::LiveStart;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent};
use progress_pusher::Pusher;
use std::sync::Arc;

// One thread, as every function (`aws_adapters::startup::Warming` says why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = LiveStart::from_env()?;
    let pusher = Warming::start(async move {
        let (store, frames) = start.connect().await?;
        Ok::<_, Error>(Pusher {
            tasks: store.clone(),
            connections: store,
            pusher: Arc::new(frames),
        })
    });
    pusher
        .serve(|pusher, event: LambdaEvent<Event>| async move { pusher.handle(event).await })
        .await
}
