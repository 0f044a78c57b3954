//! QR rendering: PNG files for `/app/login`, and text for the terminal log of
//! headless servers.

use std::io::Cursor;

use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// Smallest edge of the PNG, in pixels; large enough for a phone camera across a room.
const PNG_MIN_SIZE: u32 = 512;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the pairing code does not fit in a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("cannot encode the QR image: {0}")]
    Image(#[from] image::ImageError),
}

/// Encodes `code` as a black-on-white PNG with a quiet zone.
pub fn render_png(code: &str) -> Result<Vec<u8>, QrError> {
    let qr = QrCode::new(code.as_bytes())?;
    let img = qr
        .render::<Luma<u8>>()
        .min_dimensions(PNG_MIN_SIZE, PNG_MIN_SIZE)
        .build();
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(png)
}

/// Encodes `code` as half-block characters for a terminal.
pub fn render_terminal(code: &str) -> Option<String> {
    let qr = QrCode::new(code.as_bytes()).ok()?;
    Some(
        qr.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str =
        "2@Y2hlY2sgdGhlIHNjYW4=,dGhlIG5vaXNlIGtleQ==,aWRlbnRpdHkga2V5,YWR2IHNlY3JldA==";

    #[test]
    fn png_decodes_back_to_the_code() {
        let png = render_png(CODE).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert!(img.width() >= PNG_MIN_SIZE && img.height() >= PNG_MIN_SIZE);
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_meta, content) = grids[0].decode().unwrap();
        assert_eq!(content, CODE);
    }

    #[test]
    fn terminal_rendering_has_one_line_per_two_modules() {
        let text = render_terminal(CODE).unwrap();
        let modules = QrCode::new(CODE.as_bytes()).unwrap().width() + 8; // quiet zone 4+4
        assert_eq!(text.lines().count(), modules.div_ceil(2));
    }
}
