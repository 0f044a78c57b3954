//! Documents: any file, sent with its (sanitised) original name and a MIME type
//! sniffed from its content.

use super::MediaError;
use super::{Upload, read_head};

/// How much of a document its type is read from.
const HEAD: usize = 8192;

/// A document's name and type; its bytes stay in the upload's file.
pub struct Document {
    pub mime_type: String,
    pub file_name: String,
}

pub async fn prepare(upload: &Upload) -> Result<Document, MediaError> {
    let head = read_head(upload, HEAD).await?;
    let whole = head.len() < HEAD;
    let mime_type = sniff_mime(&head, whole).to_owned();
    let file_name = display_name(upload.file_name.as_deref());
    Ok(Document {
        mime_type,
        file_name,
    })
}

/// MIME type from magic bytes; text that has none is `text/plain`. `head` is the
/// start of the file (`whole`: all of it): a character cut at its end still counts
/// as text.
pub fn sniff_mime(head: &[u8], whole: bool) -> &'static str {
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !whole && e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    match infer::get(head) {
        Some(kind) => kind.mime_type(),
        None if text => "text/plain",
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
        assert_eq!(sniff_mime(b"%PDF-1.7\n...", true), "application/pdf");
        assert_eq!(sniff_mime(b"name,age\nbudi,30\n", true), "text/plain");
        assert_eq!(
            sniff_mime(&[0xff, 0xfe, 0x00, 0x81, 0x9f], true),
            "application/octet-stream"
        );
    }

    #[test]
    fn a_character_cut_at_the_end_of_the_head_is_still_text() {
        let text = "é".repeat(10);
        let cut = &text.as_bytes()[..19];
        assert_eq!(sniff_mime(cut, false), "text/plain");
        // The same bytes as the whole file are not valid text.
        assert_eq!(sniff_mime(cut, true), "application/octet-stream");
        // A broken sequence in the middle is not text either way.
        assert_eq!(sniff_mime(b"ab\xffcd", false), "application/octet-stream");
    }
}
