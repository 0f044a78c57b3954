//! Image path benchmark: compress + thumbnail of a 12-megapixel JPEG, side by side with
//! libvips' `vipsthumbnail` (the engine behind the Go server) on the same file.
//!
//! Run: `cargo bench --bench image_pipeline` (needs `vipsthumbnail`, Debian
//! `libvips-tools`, for the comparison; without it only our time is printed).

use std::io::Cursor;
use std::process::Command;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

const WIDTH: u32 = 4000;
const HEIGHT: u32 = 3000;
const RUNS: usize = 15;

/// A photo-like 12 MP JPEG: smooth gradients plus fine detail, so the encoder and
/// decoder do real work.
fn sample_jpeg() -> Vec<u8> {
    let img = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27;
        Rgb([
            ((x * 255 / WIDTH) as u8).wrapping_add(noise as u8),
            ((y * 255 / HEIGHT) as u8).wrapping_add((noise >> 1) as u8),
            (((x + y) / 40 % 256) as u8) ^ (noise as u8),
        ])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let jpeg = sample_jpeg();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("photo.jpg");
    std::fs::write(&input, &jpeg).unwrap();
    println!(
        "input: {WIDTH}x{HEIGHT} JPEG, {} KiB; median of {RUNS} runs",
        jpeg.len() / 1024
    );

    let ours = median(
        (0..RUNS)
            .map(|_| {
                let bytes = jpeg.clone();
                let start = Instant::now();
                let out = whatsapp_api::media::image::process(bytes, true).unwrap();
                let took = start.elapsed();
                assert_eq!(out.width, 600);
                took
            })
            .collect(),
    );
    println!(
        "whatsapp-api compress + thumbnail: {:>8.1} ms",
        ours.as_secs_f64() * 1e3
    );

    let output = dir.path().join("vips.jpg");
    let vips = |size: &str, q: u8| {
        Command::new("vipsthumbnail")
            .arg(&input)
            .args(["--size", size, "-o"])
            .arg(format!("{}[Q={q}]", output.display()))
            .status()
    };
    match vips("600x", 90) {
        Ok(status) if status.success() => {
            let theirs = median(
                (0..RUNS)
                    .map(|_| {
                        let start = Instant::now();
                        assert!(vips("600x", 90).unwrap().success());
                        assert!(vips("100x", 75).unwrap().success());
                        start.elapsed()
                    })
                    .collect(),
            );
            println!(
                "vipsthumbnail 600 px + 100 px:     {:>8.1} ms (two processes)",
                theirs.as_secs_f64() * 1e3
            );
            let single = median(
                (0..RUNS)
                    .map(|_| {
                        let start = Instant::now();
                        assert!(vips("600x", 90).unwrap().success());
                        start.elapsed()
                    })
                    .collect(),
            );
            println!(
                "vipsthumbnail 600 px only:         {:>8.1} ms (one process)",
                single.as_secs_f64() * 1e3
            );
            println!(
                "ratio ours / vips: {:.2} against both outputs, {:.2} against 600 px alone \
                 (below 1 is faster)",
                ours.as_secs_f64() / theirs.as_secs_f64(),
                ours.as_secs_f64() / single.as_secs_f64()
            );
        }
        _ => println!("vipsthumbnail not found: install libvips-tools to compare"),
    }
}
