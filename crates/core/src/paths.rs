//! Which request paths are ones we route. API Gateway and the api function must agree on what
//! a path names, so a path that different layers could read differently is refused by both:
//! dot segments (`.`, `..`, also percent-encoded) and encoded slashes or backslashes. Both
//! the api function's router and the local gateway call [`is_canonical`]; both answer 404.

/// Whether `path` (as received, still percent-encoded) is free of dot segments and encoded
/// separators.
pub fn is_canonical(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return false;
    }
    lower
        .split('/')
        .all(|segment| !matches!(segment.replace("%2e", ".").as_str(), "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encoded_separators_are_not_canonical() {
        for path in [
            "/tasks/./beneficiaries-import",
            "/tasks/../beneficiaries",
            "/tasks/%2e%2E/beneficiaries",
            "/tasks/beneficiaries-import%2Fx",
            "/tasks/beneficiaries-import%5cx",
            "/tasks/a\\b",
            "/..",
        ] {
            assert!(!is_canonical(path), "{path}");
        }
        for path in [
            "/tasks/beneficiaries-import",
            "/tasks/beneficiaries-import/7d3f2c1e-9a4b-4c5d-8e6f-0a1b2c3d4e5f/errors",
            "/beneficiaries",
            "/tasks/a.b",
            "/tasks/...",
        ] {
            assert!(is_canonical(path), "{path}");
        }
    }
}
