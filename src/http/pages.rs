//! The console, oversight and tablet pages: static files from `http.web_dir`, and the two
//! libraries they use from its `node_modules` (installed from npm at set-up, pinned by
//! `web/package-lock.json`). Pages are public; everything they show comes from the API,
//! which needs a session.

use std::path::{Path, PathBuf};

use actix_web::http::header;
use actix_web::{guard, web, HttpRequest, HttpResponse};

/// Where the files are, and the one extra image origin (a tile server) the pages may load.
pub struct WebRoot {
    pub dir: PathBuf,
    pub csp: String,
}

impl WebRoot {
    pub fn new(dir: PathBuf, tile_url: &str) -> Self {
        // Only the tile server's origin (scheme://host[:port]) is let in, never a wildcard.
        let tiles = tile_url
            .split_once("://")
            .map(|(scheme, rest)| format!(" {scheme}://{}", rest.split('/').next().unwrap_or_default()))
            .unwrap_or_default();
        let csp = format!(
            "default-src 'self'; img-src 'self' data: blob:{tiles}; connect-src 'self' ws: wss:; \
             style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        );
        Self { dir, csp }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // GET and HEAD (actix answers HEAD without the body).
    let read = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.route("/", read().to(|| async { redirect("/console/") }))
        .route("/{page:(console|oversight|tablet)}", read().to(page_no_slash))
        .route("/{page:(console|oversight|tablet)}/", read().to(page))
        .route("/static/{path:.*}", read().to(asset))
        .route("/vendor/leaflet/{path:.*}", read().to(asset))
        .route("/vendor/mqtt.min.js", read().to(mqtt_js));
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, to)).finish()
}

async fn page_no_slash(req: HttpRequest) -> HttpResponse {
    redirect(&format!("{}/", req.path()))
}

async fn page(req: HttpRequest, root: web::Data<WebRoot>) -> HttpResponse {
    let name = req.match_info().get("page").unwrap_or_default();
    serve(&root, root.dir.join(name).join("index.html")).await
}

async fn asset(req: HttpRequest, root: web::Data<WebRoot>) -> HttpResponse {
    let tail = req.match_info().get("path").unwrap_or_default();
    let Some(rel) = clean(tail) else {
        return HttpResponse::NotFound().finish();
    };
    let path = if req.path().starts_with("/static/") {
        root.dir.join("static").join(rel)
    } else {
        root.dir.join("node_modules/leaflet/dist").join(rel)
    };
    serve(&root, path).await
}

async fn mqtt_js(root: web::Data<WebRoot>) -> HttpResponse {
    serve(&root, root.dir.join("node_modules/mqtt/dist/mqtt.min.js")).await
}

/// A relative path of plain names: no `..`, no hidden files, no absolute paths.
fn clean(tail: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in tail.split('/') {
        if part.is_empty() || part.starts_with('.') || part.contains('\\') {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

async fn serve(root: &WebRoot, path: PathBuf) -> HttpResponse {
    let ctype = content_type(&path);
    let read = actix_rt::task::spawn_blocking(move || std::fs::read(path)).await;
    let Ok(Ok(bytes)) = read else {
        return HttpResponse::NotFound()
            .content_type("text/plain")
            .body("not found (the web pages need `npm ci` in web/, which scripts/setup.sh runs)");
    };
    HttpResponse::Ok()
        .content_type(ctype)
        // Small files, and a new release must show at once: revalidate every time.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("Content-Security-Policy", root.csp.as_str()))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        assert_eq!(clean("console.js"), Some(PathBuf::from("console.js")));
        assert_eq!(clean("images/marker-icon.png"), Some(PathBuf::from("images/marker-icon.png")));
        for bad in ["../Cargo.toml", "a/../../etc/passwd", "", "/etc/passwd", ".env", "a//b", "a\\..\\b"] {
            assert_eq!(clean(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_tile_servers_origin_is_let_in() {
        let r = WebRoot::new("web".into(), "https://tiles.example.org/{z}/{x}/{y}.png");
        assert!(r.csp.contains("img-src 'self' data: blob: https://tiles.example.org;"), "{}", r.csp);
        let r = WebRoot::new("web".into(), "");
        assert!(r.csp.contains("img-src 'self' data: blob:;"), "{}", r.csp);
    }
}
