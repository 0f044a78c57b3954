//! Validation in the format of Go's ozzo-validation, which v2.3.0 clients see verbatim:
//! one `field: reason` per failing field, sorted by field name, joined by `; `, ending in `.`.
//!
//! Requests declare their rules with the `validator` crate (see `http::request`); the
//! rules below are the ones it lacks, and [`ValidationErrors::from`] is the one place
//! that renders `validator`'s errors in ozzo's words. As in ozzo, every rule but
//! `required` lets an absent value pass (requests hold blank fields as `None`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use validator::{ValidationError, ValidationErrorsKind};

/// Failed validation: field name → reason, displayed in ozzo's format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(BTreeMap<String, String>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single failing field.
    pub fn single(field: &str, reason: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, reason);
        errors
    }

    /// Records `reason` for `field` unless the field already failed (first failure wins).
    pub fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| reason.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing failed, the collected errors otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = self
            .0
            .iter()
            .map(|(field, reason)| format!("{field}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ");
        write!(f, "{joined}.")
    }
}

impl std::error::Error for ValidationErrors {}

impl From<validator::ValidationErrors> for ValidationErrors {
    /// One reason per field: `required` first when it failed (ozzo checks it first),
    /// else the first rule in declaration order. Nested requests (shared field groups)
    /// are flattened: their fields sit beside the outer ones on the wire.
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut out = ValidationErrors::new();
        collect(&errors, &mut out);
        out
    }
}

fn collect(errors: &validator::ValidationErrors, out: &mut ValidationErrors) {
    for (field, kind) in errors.errors() {
        match kind {
            ValidationErrorsKind::Field(list) => {
                let first = list
                    .iter()
                    .find(|e| e.code == "required")
                    .or_else(|| list.first());
                if let Some(error) = first {
                    // A field named after a keyword is declared `r#type`.
                    out.add(field.trim_start_matches("r#"), reason(error));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, out),
            ValidationErrorsKind::List(items) => {
                for inner in items.values() {
                    collect(inner, out);
                }
            }
        }
    }
}

/// The ozzo wording of one failed rule.
fn reason(error: &ValidationError) -> String {
    if let Some(message) = &error.message {
        return message.to_string();
    }
    let param = |name: &str| error.params.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
    match error.code.as_ref() {
        "required" => "cannot be blank".to_owned(),
        "length" => {
            let (min, max) = (param("min"), param("max"));
            if min == 0 {
                format!("the length must be no more than {max}")
            } else if min == max {
                format!("the length must be exactly {min}")
            } else {
                format!("the length must be between {min} and {max}")
            }
        }
        "e164" => "must be a valid E164 number".to_owned(),
        "digits" => "must contain only digits".to_owned(),
        "boolean" => "must be a boolean (true or false)".to_owned(),
        "url" => "must be a valid URL".to_owned(),
        other => format!("is invalid ({other})"),
    }
}

/// A failed rule with a reason of its own.
pub fn invalid(reason: impl Into<Cow<'static, str>>) -> ValidationError {
    ValidationError::new("invalid").with_message(reason.into())
}

/// Length in bytes (ozzo's `Length` counts bytes), inclusive bounds; `0` as minimum
/// means "no more than".
pub fn byte_length(value: &str, min: u64, max: u64) -> Result<(), ValidationError> {
    let len = value.len() as u64;
    if (min..=max).contains(&len) {
        return Ok(());
    }
    let mut error = ValidationError::new("length");
    error.add_param(Cow::Borrowed("min"), &min);
    error.add_param(Cow::Borrowed("max"), &max);
    Err(error)
}

/// `^\+?[1-9]\d{1,14}$`
pub fn e164(value: &str) -> Result<(), ValidationError> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    let bytes = digits.as_bytes();
    let valid = (2..=15).contains(&bytes.len())
        && bytes[0] != b'0'
        && bytes.iter().all(|b| b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new("e164"))
    }
}

/// Digits with an optional leading `+` (a phone number written for humans).
pub fn phone_digits(value: &str) -> Result<(), ValidationError> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ValidationError::new("digits"))
    }
}

/// A boolean as Go's `ParseBool` and HTML checkboxes write it (`true/false/1/0/t/f/on/off`,
/// any case). `None` for anything else.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "on" => Some(true),
        "false" | "0" | "f" | "off" => Some(false),
        _ => None,
    }
}

pub fn boolean(value: &str) -> Result<(), ValidationError> {
    parse_bool(value)
        .map(|_| ())
        .ok_or_else(|| ValidationError::new("boolean"))
}

/// An `http` or `https` URL.
pub fn http_url(value: &str) -> Result<(), ValidationError> {
    let value = value.trim();
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(())
    } else {
        Err(ValidationError::new("url"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use validator::Validate;

    #[derive(Validate)]
    struct Sample {
        #[validate(required)]
        message: Option<String>,
        #[validate(required, custom(function = "e164"), custom(function = "phone_length"))]
        phone: Option<String>,
        #[validate(custom(function = "caption_length"))]
        caption: Option<String>,
    }

    fn phone_length(value: &str) -> Result<(), ValidationError> {
        byte_length(value, 10, 15)
    }

    fn caption_length(value: &str) -> Result<(), ValidationError> {
        byte_length(value, 0, 200)
    }

    fn rendered(sample: Sample) -> String {
        match sample.validate() {
            Ok(()) => String::new(),
            Err(e) => ValidationErrors::from(e).to_string(),
        }
    }

    #[test]
    fn errors_are_sorted_by_field_and_end_with_a_period() {
        let sample = Sample {
            message: None,
            phone: None,
            caption: None,
        };
        assert_eq!(
            rendered(sample),
            "message: cannot be blank; phone: cannot be blank."
        );
    }

    #[test]
    fn only_the_first_failing_rule_of_a_field_is_reported() {
        let sample = Sample {
            message: Some("hi".into()),
            phone: Some("+0123".into()),
            caption: None,
        };
        assert_eq!(rendered(sample), "phone: must be a valid E164 number.");
    }

    #[test]
    fn length_counts_bytes_and_names_its_bounds() {
        let sample = Sample {
            message: Some("hi".into()),
            phone: Some("12345".into()),
            caption: None,
        };
        assert_eq!(
            rendered(sample),
            "phone: the length must be between 10 and 15."
        );
        // 101 two-byte characters: 202 bytes, over the limit of 200.
        let sample = Sample {
            message: Some("hi".into()),
            phone: Some("6281234567890".into()),
            caption: Some("é".repeat(101)),
        };
        assert_eq!(
            rendered(sample),
            "caption: the length must be no more than 200."
        );
    }

    #[test]
    fn absent_values_pass_every_rule_but_required() {
        let sample = Sample {
            message: Some("hi".into()),
            phone: Some("6281234567890".into()),
            caption: None,
        };
        assert_eq!(rendered(sample), "");
    }

    #[test]
    fn e164_accepts_plus_and_rejects_leading_zero_and_letters() {
        assert!(e164("+6281234567890").is_ok());
        assert!(e164("6281234567890").is_ok());
        assert!(e164("0812345678").is_err());
        assert!(e164("62812abc").is_err());
        assert!(e164("+1234567890123456").is_err());
        assert!(e164("+").is_err());
    }

    #[test]
    fn phone_digits_allows_one_leading_plus_only() {
        assert!(phone_digits("+628123").is_ok());
        assert!(phone_digits("62-812").is_err());
        assert!(phone_digits("++62").is_err());
    }

    #[test]
    fn booleans_take_go_and_checkbox_spellings() {
        for yes in ["true", "T", "1", "on", " ON "] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "F", "0", "off"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_bool("yes"), None);
        assert!(boolean("maybe").is_err());
    }
}
