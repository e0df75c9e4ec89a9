//! Plain HTTP GETs on a WebSocket listener: files from `gateway.static_dir`, or the built-in page
//! at `/` when one is set and there is no directory (the chat app's page), or 404. Small files
//! only, read whole; paths cannot leave the directory.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use gatewire_proto::websocket::{HandshakeRequest, url_decode};

/// The full HTTP response for `request`.
pub fn respond(
    static_dir: Option<&Path>,
    builtin_page: Option<&str>,
    request: &HandshakeRequest,
) -> Bytes {
    if static_dir.is_none()
        && let Some(page) = builtin_page.filter(|_| matches!(request.path(), "/" | "/index.html"))
    {
        return response("200 OK", "text/html; charset=utf-8", page.as_bytes());
    }
    match static_dir.and_then(|dir| resolve(dir, request.path())) {
        Some(path) => match std::fs::read(&path) {
            Ok(body) => response("200 OK", content_type(&path), &body),
            Err(_) => not_found(),
        },
        None => not_found(),
    }
}

fn not_found() -> Bytes {
    response(
        "404 Not Found",
        "text/plain; charset=utf-8",
        b"404 Not Found\n",
    )
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Bytes {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// The file under `dir` that `url_path` names (`/` is `index.html`), if it is a plain file.
fn resolve(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = String::from_utf8(url_decode(url_path.replace('+', "%2B").as_bytes())).ok()?;
    let relative = decoded.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let relative = Path::new(&relative);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let path = dir.join(relative);
    path.is_file().then_some(path)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
