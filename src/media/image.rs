//! Images: JPEG or PNG, checked by content, turned upright by their EXIF orientation,
//! optionally compressed to 600 px wide (JPEG quality 90), always with a JPEG
//! thumbnail about 100 px wide. Decoding runs on the blocking pool, in a heavy work
//! slot.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{
    DynamicImage, GenericImageView, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits,
    RgbImage,
};

use super::MediaError;
use super::{MediaConfig, Upload, blocking, read_file};

pub const NOT_ALLOWED: &str = "your image is not allowed. please use jpg/jpeg/png";
/// Width of a compressed image.
pub const COMPRESSED_WIDTH: u32 = 600;
pub const COMPRESSED_QUALITY: u8 = 90;
/// Width of the thumbnail carried inside the message.
pub const THUMBNAIL_WIDTH: u32 = 100;
const THUMBNAIL_QUALITY: u8 = 75;
/// Largest image decoded, in pixels: above any phone camera, below a decompression bomb.
pub const MAX_PIXELS: u64 = 80_000_000;
/// Most memory a decoder may allocate.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

pub struct PreparedImage {
    pub bytes: Vec<u8>,
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub thumbnail: Vec<u8>,
}

pub async fn prepare(
    upload: &Upload,
    compress: bool,
    config: &MediaConfig,
) -> Result<PreparedImage, MediaError> {
    // The slot first: requests queued for one do not each hold their file in memory.
    let slot = config.heavy_work_slot().await?;
    let bytes = read_file(&upload.path).await?;
    blocking(slot, move || process(bytes, compress)).await
}

/// Checks, orients, compresses and thumbnails an image held in memory.
pub fn process(bytes: Vec<u8>, compress: bool) -> Result<PreparedImage, MediaError> {
    let format = match image::guess_format(&bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        _ => return Err(MediaError::Rejected(NOT_ALLOWED.to_owned())),
    };
    let target = if compress {
        COMPRESSED_WIDTH
    } else {
        THUMBNAIL_WIDTH
    };
    let scaled = match format {
        ImageFormat::Jpeg => decode_jpeg_scaled(&bytes, target)?,
        _ => None,
    };
    let (img, full_size) = match scaled {
        Some(scaled) => scaled,
        None => {
            let img = decode(&bytes, format)?;
            let size = img.dimensions();
            (img, size)
        }
    };

    if compress {
        let small = shrink_to_width(&img, COMPRESSED_WIDTH);
        drop(img);
        // From the small image: a second pass over the full one would cost as much.
        let thumbnail = encode_jpeg(&shrink_to_width(&small, THUMBNAIL_WIDTH), THUMBNAIL_QUALITY)?;
        Ok(PreparedImage {
            bytes: encode_jpeg(&small, COMPRESSED_QUALITY)?,
            mime_type: "image/jpeg",
            width: small.width(),
            height: small.height(),
            thumbnail,
        })
    } else {
        let thumbnail = encode_jpeg(&shrink_to_width(&img, THUMBNAIL_WIDTH), THUMBNAIL_QUALITY)?;
        Ok(PreparedImage {
            bytes,
            mime_type: format.to_mime_type(),
            width: full_size.0,
            height: full_size.1,
            thumbnail,
        })
    }
}

/// Side of a profile picture.
pub const AVATAR_SIDE: u32 = 640;

/// A profile picture: the centre square of a JPEG or PNG, 640×640, as JPEG.
pub async fn avatar(upload: &Upload, config: &MediaConfig) -> Result<Vec<u8>, MediaError> {
    let slot = config.heavy_work_slot().await?;
    let bytes = read_file(&upload.path).await?;
    blocking(slot, move || {
        let format = match image::guess_format(&bytes) {
            Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
            _ => return Err(MediaError::Rejected(NOT_ALLOWED.to_owned())),
        };
        let img = decode(&bytes, format)?;
        let side = img.width().min(img.height());
        let square = img.crop_imm(
            (img.width() - side) / 2,
            (img.height() - side) / 2,
            side,
            side,
        );
        let sized = square.resize_exact(
            AVATAR_SIDE,
            AVATAR_SIDE,
            image::imageops::FilterType::Triangle,
        );
        encode_jpeg(&sized, 85)
    })
    .await
}

fn bad_image(e: impl std::fmt::Display) -> MediaError {
    MediaError::Rejected(format!("the image cannot be read: {e}"))
}

/// Decodes after checking the declared size, and applies the EXIF orientation.
fn decode(bytes: &[u8], format: ImageFormat) -> Result<DynamicImage, MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad_image)?;
    let (width, height) = decoder.dimensions();
    if let Some(err) = too_large(width, height) {
        return Err(err);
    }
    let orientation = decoder.orientation().map_err(bad_image)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad_image)?;
    img.apply_orientation(orientation);
    Ok(img)
}

fn too_large(width: u32, height: u32) -> Option<MediaError> {
    (u64::from(width) * u64::from(height) > MAX_PIXELS).then(|| {
        MediaError::Rejected(format!(
            "the image is too large: {width}x{height} pixels (at most {} megapixels)",
            MAX_PIXELS / 1_000_000
        ))
    })
}

/// An upright image and the full upright size of its source.
type Decoded = (DynamicImage, (u32, u32));

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Decodes a JPEG at reduced size in the DCT ("shrink on load", as libvips does):
/// the smallest of 1/1, 1/2, 1/4, 1/8 that is still at least `target` wide once
/// upright. Returns the upright image and the full upright size, or `None` for
/// JPEGs this decoder does not handle (CMYK, 16-bit), which take the general path.
fn decode_jpeg_scaled(bytes: &[u8], target: u32) -> Result<Option<Decoded>, MediaError> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(bad_image)?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if let Some(err) = too_large(width, height) {
        return Err(err);
    }
    let orientation = decoder
        .exif_data()
        .map(|exif| exif.strip_prefix(b"Exif\0\0").unwrap_or(exif))
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let upright = if swaps_axes(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    if upright.0 > target {
        // Ask for the stored size whose upright width is `target`.
        let scale = |v: u32| (u64::from(v) * u64::from(target)).div_ceil(u64::from(upright.0));
        let (w, h) = (scale(width).max(1), scale(height).max(1));
        decoder.scale(w as u16, h as u16).map_err(bad_image)?;
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let pixel_format = info.pixel_format;
    let pixels = decoder.decode().map_err(bad_image)?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let mut img = match pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L8 => {
            GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => None,
    };
    if let Some(img) = img.as_mut() {
        img.apply_orientation(orientation);
    }
    Ok(img.map(|img| (img, upright)))
}

/// Scales down to `width` keeping the aspect ratio; never scales up.
fn shrink_to_width(img: &DynamicImage, width: u32) -> DynamicImage {
    if img.width() <= width {
        return img.clone();
    }
    let height = (u64::from(img.height()) * u64::from(width))
        .div_ceil(u64::from(img.width()))
        .max(1) as u32;
    img.thumbnail_exact(width, height)
}

/// JPEG-encodes `img`, putting transparent pixels on white.
fn encode_jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, MediaError> {
    let rgb = flatten_on_white(img);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .map_err(|e| MediaError::Failed(format!("cannot encode JPEG: {e}")))?;
    Ok(out)
}

fn flatten_on_white(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let blend =
            |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgba, RgbaImage};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbaImage::from_pixel(width, height, Rgba([10, 200, 30, 255]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgba8)
            .unwrap();
        out
    }

    fn dimensions(jpeg: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn compress_makes_a_600_wide_jpeg_and_a_100_wide_thumbnail() {
        let out = process(png(1200, 800), true).unwrap();
        assert_eq!(out.mime_type, "image/jpeg");
        assert_eq!((out.width, out.height), (600, 400));
        assert_eq!(dimensions(&out.bytes), (600, 400));
        assert_eq!(dimensions(&out.thumbnail), (100, 67));
    }

    #[test]
    fn without_compress_the_original_bytes_are_sent() {
        let original = png(300, 200);
        let out = process(original.clone(), false).unwrap();
        assert_eq!(out.bytes, original);
        assert_eq!(out.mime_type, "image/png");
        assert_eq!((out.width, out.height), (300, 200));
        assert_eq!(dimensions(&out.thumbnail), (100, 67));
    }

    #[test]
    fn small_images_are_not_enlarged() {
        let out = process(png(80, 40), true).unwrap();
        assert_eq!(dimensions(&out.bytes), (80, 40));
        assert_eq!(dimensions(&out.thumbnail), (80, 40));
    }

    #[test]
    fn other_formats_are_refused() {
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
        let err = process(gif, true).err().unwrap();
        assert_eq!(err.to_string(), NOT_ALLOWED);
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_decoding() {
        // A valid PNG header claiming 20000x20000 pixels, with almost no data.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = process(bomb, true).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the image is too large: 20000x20000 pixels (at most 80 megapixels)"
        );
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 7])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn a_large_jpeg_is_shrunk_on_load_to_the_exact_width() {
        let out = process(jpeg(4000, 3000), true).unwrap();
        assert_eq!((out.width, out.height), (600, 450));
        assert_eq!(dimensions(&out.bytes), (600, 450));
        assert_eq!(dimensions(&out.thumbnail), (100, 75));
    }

    #[test]
    fn an_uncompressed_jpeg_reports_its_full_size() {
        let original = jpeg(1600, 1200);
        let out = process(original.clone(), false).unwrap();
        assert_eq!(out.bytes, original);
        assert_eq!((out.width, out.height), (1600, 1200));
        assert_eq!(dimensions(&out.thumbnail), (100, 75));
    }

    #[test]
    fn a_grayscale_jpeg_is_handled() {
        let img = GrayImage::from_fn(900, 300, |x, _| image::Luma([(x % 256) as u8]));
        let mut gray = Vec::new();
        JpegEncoder::new_with_quality(&mut gray, 90)
            .encode_image(&img)
            .unwrap();
        let out = process(gray, true).unwrap();
        assert_eq!(dimensions(&out.bytes), (600, 200));
    }

    #[test]
    fn transparency_becomes_white() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(2, 2, Rgba([0, 0, 0, 0])));
        assert_eq!(flatten_on_white(&img).get_pixel(0, 0).0, [255, 255, 255]);
    }
}
