//! `GET /public/pay-orders/{id}/qr?format=png|svg&size=128..1024`: the order's payment URI
//! ([`payorders::checkout::uri`]: EIP-681 on EVM chains, Solana Pay on Solana) as a QR
//! code, once the customer chose a currency (`PAYMENT_DETAILS_REQUIRED` before). PNG by
//! default, 256 px; the image fits in `size` x `size`. Per-IP limit: QR codes.

use payorders::checkout::{uri, view};
use payorders::http::public::{self, Limit};
use payorders::http::{self, ApiError, Body, Params, Request, RequestExt, Response};
use payorders::runtime::Services;
use qrcode::{EcLevel, QrCode};
use serde::Deserialize;

/// The query string of the QR route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct QrQuery {
    /// `png` (default) or `svg`.
    format: Option<QrFormat>,
    /// Side of the image in pixels, 128 to 1024 (default 256).
    #[cfg_attr(feature = "openapi", param(minimum = 128, maximum = 1024))]
    size: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QrFormat {
    Png,
    Svg,
}

impl Params for QrQuery {
    fn code(_field: &str) -> &'static str {
        "INVALID_PARAMETER"
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(public::guarded(&*svc.store, Limit::QrCodes, &req, |_| qr(svc, &req)).await)
}

async fn qr(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    http::no_body(req)?;
    let q: QrQuery = http::request::query(req)?;
    let size = q.size.unwrap_or(256);
    if !(128..=1024).contains(&size) {
        return Err(ApiError::invalid(
            "INVALID_PARAMETER",
            "size",
            "size must be an integer from 128 to 1024",
        ));
    }
    let params = req.path_parameters();
    let order = view::load_public_order(svc, params.first("id").unwrap_or_default()).await?;
    let payment = order.payment.as_ref().ok_or_else(|| {
        ApiError::unprocessable(
            "PAYMENT_DETAILS_REQUIRED",
            "choose a currency first: the QR code carries the payment URI of the chosen currency",
        )
    })?;
    let text = uri::payment_uri(payment).ok_or_else(ApiError::internal)?;
    let (content_type, body) = render(&text, q.format.unwrap_or(QrFormat::Png), size)?;
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        content_type.parse().expect("a valid header"),
    );
    // The URI changes only with the payment details (and a partial payment's remainder).
    h.insert("cache-control", "no-cache".parse().expect("a valid header"));
    Ok(resp)
}

/// The QR code of `text` as an image fitting in `size` pixels.
pub fn render(text: &str, format: QrFormat, size: u32) -> Result<(&'static str, Body), ApiError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| {
        tracing::error!(error = %e, "the payment URI does not fit a QR code");
        ApiError::internal()
    })?;
    match format {
        QrFormat::Svg => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .max_dimensions(size, size)
                .quiet_zone(true)
                .build();
            Ok(("image/svg+xml", Body::Text(svg)))
        }
        QrFormat::Png => {
            let img = code
                .render::<image::Luma<u8>>()
                .max_dimensions(size, size)
                .quiet_zone(true)
                .build();
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| {
                    tracing::error!(error = %e, "PNG encoding failed");
                    ApiError::internal()
                })?;
            Ok(("image/png", Body::Binary(png)))
        }
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
