//! Files the host serves to browsers under `/assets/`, embedded in the binary: nothing a page
//! of Shoal loads comes from the internet.
//!
//! Third-party files sit under `core/api/assets/<package>-<version>/`, copied unchanged from
//! the npm package (`npm pack <package>@<version>`), each with its licence; their SHA-256
//! sums are pinned in `core/api/assets/SHA256SUMS` and checked by a test. Their paths carry
//! the version, so browsers may cache them for good; Shoal's own files (`shoal/`) are
//! revalidated.

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!(
        "echarts-6.1.0/echarts.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "graphiql-3.9.0/graphiql.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("graphiql-3.9.0/graphiql.min.css", "text/css; charset=utf-8"),
    asset!(
        "react-18.3.1/react.production.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "react-dom-18.3.1/react-dom.production.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("shoal/graphiql.js", "text/javascript; charset=utf-8"),
    asset!("shoal/graphiql.css", "text/css; charset=utf-8"),
    asset!("shoal/console.js", "text/javascript; charset=utf-8"),
    asset!("shoal/console.css", "text/css; charset=utf-8"),
];

/// What a page of Shoal may load: files from this host only, no inline scripts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /assets/<path>`.
pub async fn serve(Path(path): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if asset.path.starts_with("shoal/") {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}

/// A page of Shoal, under [`CONTENT_SECURITY_POLICY`].
fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// The GraphiQL page (`GET /graphql` without a `query` parameter).
pub fn graphiql() -> Response {
    page(include_str!("graphiql.html"))
}

/// The staff console (`GET /`): signs in, then draws its pages from `/graphql`.
pub async fn console() -> Response {
    page(include_str!("console.html"))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::PathBuf, process::Command};

    use super::ASSETS;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
    }

    /// The pinned sums, checked by coreutils' `sha256sum` (not by our code).
    #[test]
    fn third_party_files_match_their_pinned_sums() {
        let out = Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(dir())
            .output()
            .expect("sha256sum runs");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn every_served_third_party_file_is_pinned_with_its_licence() {
        let sums = std::fs::read_to_string(dir().join("SHA256SUMS")).unwrap();
        let pinned: BTreeSet<&str> = sums
            .lines()
            .filter_map(|l| l.split_once("  ").map(|(_, path)| path))
            .collect();
        for asset in ASSETS.iter().filter(|a| !a.path.starts_with("shoal/")) {
            assert!(pinned.contains(asset.path), "{} is not pinned", asset.path);
            let package = asset.path.split('/').next().unwrap();
            assert!(
                pinned.contains(format!("{package}/LICENSE").as_str()),
                "{package} has no pinned licence"
            );
        }
    }

    #[test]
    fn the_pages_load_only_served_files_and_no_inline_script() {
        for (page, files) in [
            (include_str!("graphiql.html"), 6),
            (include_str!("console.html"), 2),
        ] {
            let mut loaded = 0;
            for attr in ["src=\"", "href=\""] {
                for piece in page.split(attr).skip(1) {
                    let url = piece.split('"').next().unwrap();
                    let path = url
                        .strip_prefix("/assets/")
                        .unwrap_or_else(|| panic!("{url} is not served by the host"));
                    assert!(
                        ASSETS.iter().any(|a| a.path == path),
                        "{url} is not embedded"
                    );
                    loaded += 1;
                }
            }
            assert_eq!(loaded, files);
            assert!(
                !page.contains("<script>"),
                "no inline script (the CSP forbids it)"
            );
        }
    }
}
