//! `edgewise serve`: a small static file server for the web bundle (`www/dist`).
//!
//! It serves only regular files under the canonicalised root: `..` segments, encoded
//! separators and symlinks that lead outside the root are refused. `/` and directories
//! map to their `index.html`. Every response carries `Cache-Control: no-cache` so a
//! rebuilt bundle is picked up on reload. Meant for local use (the demo and the browser
//! tests), not as a production web server.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

/// Arguments of `edgewise serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory to serve (the web bundle built by `cargo xtask web`).
    #[arg(long, default_value = "www/dist")]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub addr: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

/// Serves `args.root` until the process is stopped.
///
/// # Errors
/// When the root is missing or not a directory, or the address cannot be bound.
pub fn run(args: &ServeArgs) -> Result<()> {
    let root = canonical_root(&args.root)?;
    let server = Server::http(SocketAddr::new(args.addr, args.port))
        .map_err(|err| anyhow!("could not listen on {}:{}: {err}", args.addr, args.port))?;
    let bound = server.server_addr().to_ip().map_or(args.port, |a| a.port());
    let host = match args.addr {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    println!("serving {} at http://{host}:{bound}/", args.root.display());

    for request in server.incoming_requests() {
        if let Err(err) = handle(&root, request) {
            eprintln!("edgewise serve: {err:#}");
        }
    }
    Ok(())
}

/// Canonicalises the root, with a clear error when it is missing.
fn canonical_root(root: &Path) -> Result<PathBuf> {
    if !root.exists() {
        bail!(
            "the web bundle directory {} does not exist: run `cargo xtask web` first \
             (or pass --root DIR)",
            root.display()
        );
    }
    let canonical = root
        .canonicalize()
        .with_context(|| format!("could not resolve {}", root.display()))?;
    if !canonical.is_dir() {
        bail!("--root {} is not a directory", root.display());
    }
    Ok(canonical)
}

/// Why a request path does not map to a file.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Malformed path (bad percent-encoding, NUL, encoded separator).
    BadRequest,
    /// The path tries to leave the root (`..`, or a symlink pointing outside).
    Forbidden,
    /// No such file.
    NotFound,
}

impl Refusal {
    fn status(&self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
        }
    }
}

/// Maps a request URL (path plus optional query) to a file under `root`.
///
/// `root` must already be canonical. The result is canonical and inside `root`.
fn resolve(root: &Path, url: &str) -> Result<PathBuf, Refusal> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(path).ok_or(Refusal::BadRequest)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Refusal::Forbidden),
            s if s.contains(['\\', '\0']) => return Err(Refusal::BadRequest),
            s => {
                // A segment must be one plain name (no drive prefix, no root).
                let mut components = Path::new(s).components();
                match (components.next(), components.next()) {
                    (Some(Component::Normal(_)), None) => relative.push(s),
                    _ => return Err(Refusal::BadRequest),
                }
            }
        }
    }
    let mut candidate = root.join(&relative);
    if candidate.is_dir() {
        candidate.push("index.html");
    }
    let canonical = candidate.canonicalize().map_err(|_| Refusal::NotFound)?;
    if !canonical.starts_with(root) {
        return Err(Refusal::Forbidden);
    }
    if !canonical.is_file() {
        return Err(Refusal::NotFound);
    }
    Ok(canonical)
}

/// Decodes `%XX` escapes; `None` on a malformed escape or non-UTF-8 result.
fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `Content-Type` for a served file.
fn content_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "wasm" => "application/wasm".to_owned(),
        "js" | "mjs" => "text/javascript; charset=utf-8".to_owned(),
        "html" | "htm" => "text/html; charset=utf-8".to_owned(),
        "css" => "text/css; charset=utf-8".to_owned(),
        "json" => "application/json".to_owned(),
        _ => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            if mime.type_() == mime_guess::mime::TEXT {
                format!("{mime}; charset=utf-8")
            } else {
                mime.to_string()
            }
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid ASCII")
}

fn handle(root: &Path, request: Request) -> Result<()> {
    let method = request.method().clone();
    let url = request.url().to_owned();
    if !matches!(method, Method::Get | Method::Head) {
        let response = Response::from_string("only GET and HEAD are supported\n")
            .with_status_code(StatusCode(405))
            .with_header(header("Allow", "GET, HEAD"));
        return request.respond(response).context("could not send response");
    }
    match resolve(root, &url) {
        Ok(path) => {
            let file =
                File::open(&path).with_context(|| format!("could not open {}", path.display()))?;
            // tiny_http omits the body of a HEAD response by itself.
            let response = Response::from_file(file)
                .with_header(header("Content-Type", &content_type(&path)))
                .with_header(header("Cache-Control", "no-cache"))
                .with_header(header("X-Content-Type-Options", "nosniff"));
            request
                .respond(response)
                .with_context(|| format!("could not send {url}"))
        }
        Err(refusal) => {
            let status = refusal.status();
            let response = Response::from_string(format!("{status} {refusal:?}: {url}\n"))
                .with_status_code(StatusCode(status))
                .with_header(header("Content-Type", "text/plain; charset=utf-8"))
                .with_header(header("Cache-Control", "no-cache"));
            request
                .respond(response)
                .with_context(|| format!("could not send {status} for {url}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fresh directory tree: `<tmp>/site/{index.html, app.js, pkg/index.html}`
    /// and `<tmp>/secret.txt` outside the served root.
    fn site(name: &str) -> (PathBuf, PathBuf) {
        let base =
            std::env::temp_dir().join(format!("edgewise-serve-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("site");
        fs::create_dir_all(root.join("pkg")).unwrap();
        fs::write(root.join("index.html"), "<!doctype html>").unwrap();
        fs::write(root.join("app.js"), "export {}").unwrap();
        fs::write(root.join("my file.css"), "body{}").unwrap();
        fs::write(root.join("pkg/index.html"), "pkg").unwrap();
        fs::write(base.join("secret.txt"), "secret").unwrap();
        (base, root.canonicalize().unwrap())
    }

    #[test]
    fn resolves_files_and_index() {
        let (base, root) = site("resolve");
        assert_eq!(resolve(&root, "/").unwrap(), root.join("index.html"));
        assert_eq!(resolve(&root, "/app.js?v=3").unwrap(), root.join("app.js"));
        assert_eq!(
            resolve(&root, "/pkg/").unwrap(),
            root.join("pkg/index.html")
        );
        assert_eq!(resolve(&root, "/pkg").unwrap(), root.join("pkg/index.html"));
        assert_eq!(resolve(&root, "/./app.js").unwrap(), root.join("app.js"));
        assert_eq!(
            resolve(&root, "/my%20file.css").unwrap(),
            root.join("my file.css")
        );
        assert_eq!(resolve(&root, "/missing.js"), Err(Refusal::NotFound));
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn rejects_traversal() {
        let (base, root) = site("traversal");
        for url in [
            "/../secret.txt",
            "/pkg/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/pkg/%2E%2E/%2e%2e/secret.txt",
            "/pkg/../index.html",
        ] {
            assert_eq!(resolve(&root, url), Err(Refusal::Forbidden), "{url}");
        }
        for url in ["/..%5csecret.txt", "/%00", "/%zz", "/%2", "/a%ff"] {
            assert_eq!(resolve(&root, url), Err(Refusal::BadRequest), "{url}");
        }
        fs::remove_dir_all(base).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn rejects_symlink_escape() {
        let (base, root) = site("symlink");
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
        assert_eq!(resolve(&root, "/leak.txt"), Err(Refusal::Forbidden));
        assert_eq!(resolve(&root, "/up/secret.txt"), Err(Refusal::Forbidden));
        // A symlink that stays inside the root is fine.
        std::os::unix::fs::symlink(root.join("app.js"), root.join("alias.js")).unwrap();
        assert_eq!(resolve(&root, "/alias.js").unwrap(), root.join("app.js"));
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn missing_root_names_the_fix() {
        let err = canonical_root(Path::new("/nonexistent/edgewise/dist")).unwrap_err();
        assert!(err.to_string().contains("cargo xtask web"), "{err}");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a_bg.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("style.css")),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("icon.svg")), "image/svg+xml");
        assert_eq!(content_type(Path::new("icon.png")), "image/png");
        assert_eq!(content_type(Path::new("blob")), "application/octet-stream");
    }
}
