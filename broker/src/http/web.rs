//! The web front end's static build (`web/dist`), served at `/` on the API's origin: files as
//! they are, any other path outside `/assets/` (the single-page application's routes) answered
//! with its `index.html`. Vite names every built asset by its content hash, so `/assets/…` may
//! be cached for good; the rest is revalidated on every load.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::problem::Failure;

/// Built assets whose names carry their content hash.
const HASHED_PREFIX: &str = "assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// The page may load only what comes from this origin (the API included); no inline script, no
/// framing by other sites.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
                   form-action 'self'";

/// The directory holding the built front end.
#[derive(Debug, Clone)]
pub struct WebAssets {
    root: PathBuf,
}

impl WebAssets {
    /// The build in `root`, if it has an `index.html`.
    pub fn open(root: impl Into<PathBuf>) -> Option<Self> {
        let root = root.into();
        root.join("index.html").is_file().then_some(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a request path names, when it stays inside the build.
    fn file_of(&self, path: &str) -> Option<PathBuf> {
        let relative = Path::new(path.trim_start_matches('/'));
        let mut file = self.root.clone();
        for c in relative.components() {
            match c {
                Component::Normal(part) => file.push(part),
                // `..`, a root or a prefix: never outside the build.
                _ => return None,
            }
        }
        Some(file)
    }

    /// Answers a request that no API route took.
    pub async fn answer(&self, method: &Method, uri: &Uri) -> Response {
        let path = uri.path();
        if method != Method::GET && method != Method::HEAD {
            return Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                format!("{path} is a page of the web front end; it takes GET"),
            )
            .into_response();
        }
        let Some(file) = self.file_of(path) else {
            return Failure::not_found(format!("no resource at {path}")).into_response();
        };
        let (file, cache) = if file.is_file() {
            let hashed = path.trim_start_matches('/').starts_with(HASHED_PREFIX);
            (file, if hashed { IMMUTABLE } else { REVALIDATE })
        } else if !path.trim_start_matches('/').starts_with(HASHED_PREFIX) {
            // A route of the application (an offer id may hold a dot): its page, which routes
            // on the client. A built asset that is not there stays a 404.
            (self.root.join("index.html"), REVALIDATE)
        } else {
            return Failure::not_found(format!("no resource at {path}")).into_response();
        };
        match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let mut response = Response::new(if method == Method::HEAD {
                    Body::empty()
                } else {
                    Body::from(bytes)
                });
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(&file)),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                headers.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                );
                response
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read a web asset");
                Failure::not_found(format!("no resource at {path}")).into_response()
            }
        }
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build in `<dir>/dist`, with a file beside it that must never be served.
    fn build() -> (tempfile::TempDir, WebAssets) {
        let dir = tempfile::tempdir().unwrap();
        let dist = dir.path().join("dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::write(dist.join("index.html"), "<!doctype html><p>app").unwrap();
        std::fs::write(dist.join("assets/app-1a2b.js"), "console.log(1)").unwrap();
        std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
        let web = WebAssets::open(dist).unwrap();
        (dir, web)
    }

    async fn get(web: &WebAssets, path: &str) -> (StatusCode, String, String, String) {
        let r = web.answer(&Method::GET, &path.parse().unwrap()).await;
        let header = |n| {
            r.headers()
                .get(n)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (ty, cache) = (header(header::CONTENT_TYPE), header(header::CACHE_CONTROL));
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (
            status,
            ty,
            cache,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn files_routes_and_cache_headers() {
        let (_dir, web) = build();
        let (s, ty, cache, body) = get(&web, "/assets/app-1a2b.js").await;
        assert_eq!((s, cache.as_str()), (StatusCode::OK, IMMUTABLE));
        assert!(ty.starts_with("text/javascript") && body.contains("console"));
        let (s, ty, cache, body) = get(&web, "/").await;
        assert_eq!((s, cache.as_str()), (StatusCode::OK, REVALIDATE));
        assert!(ty.starts_with("text/html") && body.contains("app"));
        // A route of the application answers its page; a missing file does not.
        let (s, _, _, body) = get(&web, "/contracts/0xabc").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("app"));
        let (s, _, _, body) = get(&web, "/offers/gpu.v2").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("app"));
        let (s, _, _, _) = get(&web, "/assets/gone-99.js").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, cache, _) = get(&web, "/favicon.svg").await;
        assert_eq!((s, cache.as_str()), (StatusCode::OK, REVALIDATE));
    }

    #[tokio::test]
    async fn nothing_outside_the_build_and_only_reads() {
        let (dir, web) = build();
        for path in ["/../secret.txt", "/assets/../../secret.txt"] {
            let (s, _, _, body) = get(&web, path).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert!(!body.contains("TOP-SECRET"), "{path}");
        }
        // Encoded dots are a name, not a step up: the application's page, never the file.
        let (_, _, _, body) = get(&web, "/%2e%2e/secret.txt").await;
        assert!(!body.contains("TOP-SECRET") && body.contains("app"));
        let r = web.answer(&Method::POST, &"/".parse().unwrap()).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        // A directory without a page is no build.
        assert!(WebAssets::open(dir.path()).is_none());
    }
}
