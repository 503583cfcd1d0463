//! The stylesheet, script and font, compiled into the binary so that the
//! dashboard needs no files beside it and fetches nothing from elsewhere.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/favicon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/app.js"),
    },
    Asset {
        name: "DejaVuSans.woff2",
        content_type: "font/woff2",
        body: include_bytes!("../../static/fonts/DejaVuSans.woff2"),
    },
    Asset {
        name: "DejaVuSans-Bold.woff2",
        content_type: "font/woff2",
        body: include_bytes!("../../static/fonts/DejaVuSans-Bold.woff2"),
    },
    Asset {
        name: "DejaVuSansMono.woff2",
        content_type: "font/woff2",
        body: include_bytes!("../../static/fonts/DejaVuSansMono.woff2"),
    },
];

pub async fn serve(name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, asset.content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(asset.body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}
