//! The vCard 3.0 text of a contact message, in the layout WhatsApp clients expect.

/// Builds the card for `name` with the phone number `phone` (digits, optional `+`).
pub fn contact_vcard(name: &str, phone: &str) -> String {
    let number = phone.trim().trim_start_matches('+');
    let name = escape(name.trim());
    format!(
        "BEGIN:VCARD\nVERSION:3.0\nN:;{name};;;\nFN:{name}\nTEL;type=CELL;waid={number}:+{number}\nEND:VCARD"
    )
}

/// RFC 6350 text escaping, so a name cannot break out of its line or field.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_has_the_v2_3_0_layout() {
        assert_eq!(
            contact_vcard("Aldino Kemal", "6289685024992"),
            "BEGIN:VCARD\nVERSION:3.0\nN:;Aldino Kemal;;;\nFN:Aldino Kemal\nTEL;type=CELL;waid=6289685024992:+6289685024992\nEND:VCARD"
        );
    }

    #[test]
    fn a_leading_plus_is_not_doubled() {
        assert!(contact_vcard("A", "+62812").contains("waid=62812:+62812\n"));
    }

    #[test]
    fn a_name_cannot_inject_lines() {
        let card = contact_vcard("Eve\nTEL:+1;x,y", "1");
        assert!(card.contains("FN:Eve\\nTEL:+1\\;x\\,y\n"));
        assert_eq!(card.lines().count(), 6);
    }
}
