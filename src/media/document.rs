//! Documents: any file, sent with its (sanitised) original name and a MIME type
//! sniffed from its content.

use super::MediaError;
use super::{Upload, read_file};

pub struct Document {
    pub bytes: Vec<u8>,
    pub mime_type: String,
    pub file_name: String,
}

pub async fn prepare(upload: &Upload) -> Result<Document, MediaError> {
    let bytes = read_file(&upload.path).await?;
    let mime_type = sniff_mime(&bytes).to_owned();
    let file_name = display_name(upload.file_name.as_deref());
    Ok(Document {
        bytes,
        mime_type,
        file_name,
    })
}

/// MIME type from magic bytes; text that has none is `text/plain`.
pub fn sniff_mime(bytes: &[u8]) -> &'static str {
    match infer::get(bytes) {
        Some(kind) => kind.mime_type(),
        None if std::str::from_utf8(bytes).is_ok() => "text/plain",
        None => "application/octet-stream",
    }
}

/// The name shown to the recipient: the client's name without any path or control
/// characters, `file` when nothing usable is left.
pub fn display_name(original: Option<&str>) -> String {
    let base = original
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("");
    let clean = sanitize_filename::sanitize(base);
    let clean = clean.trim().trim_start_matches('.');
    if clean.is_empty() {
        "file".to_owned()
    } else {
        clean.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_path_and_dangerous_characters() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(
            display_name(Some("C:\\Users\\me\\report.pdf")),
            "report.pdf"
        );
        assert_eq!(display_name(Some("a\u{0}b\nc.txt")), "abc.txt");
        assert_eq!(display_name(Some("..")), "file");
        assert_eq!(display_name(None), "file");
        assert_eq!(
            display_name(Some("laporan akhir.docx")),
            "laporan akhir.docx"
        );
    }

    #[test]
    fn mime_comes_from_the_content_not_the_name() {
        assert_eq!(sniff_mime(b"%PDF-1.7\n..."), "application/pdf");
        assert_eq!(sniff_mime(b"name,age\nbudi,30\n"), "text/plain");
        assert_eq!(
            sniff_mime(&[0xff, 0xfe, 0x00, 0x81, 0x9f]),
            "application/octet-stream"
        );
    }
}
