//! Validation in the format of Go's ozzo-validation, which v2.3.0 clients see verbatim:
//! one `field: reason` per failing field, sorted by field name, joined by `; `, ending in `.`.

use std::collections::BTreeMap;
use std::fmt;

/// One rule applied to a field. Like ozzo, every rule but `Required` passes an empty value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Required,
    /// Length in bytes, inclusive bounds; `0` as minimum means "no more than".
    Length(usize, usize),
    /// `^\+?[1-9]\d{1,14}$`
    E164,
    /// Digits with an optional leading `+` (a phone number written for humans).
    PhoneDigits,
}

impl Rule {
    fn check(self, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return match self {
                Rule::Required => Err("cannot be blank".to_owned()),
                _ => Ok(()),
            };
        }
        match self {
            Rule::Required => Ok(()),
            Rule::Length(min, max) => {
                let len = value.len();
                if len >= min && len <= max {
                    Ok(())
                } else if min == 0 {
                    Err(format!("the length must be no more than {max}"))
                } else if min == max {
                    Err(format!("the length must be exactly {min}"))
                } else {
                    Err(format!("the length must be between {min} and {max}"))
                }
            }
            Rule::E164 => {
                if is_e164(value) {
                    Ok(())
                } else {
                    Err("must be a valid E164 number".to_owned())
                }
            }
            Rule::PhoneDigits => {
                let digits = value.strip_prefix('+').unwrap_or(value);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(())
                } else {
                    Err("must contain only digits".to_owned())
                }
            }
        }
    }
}

fn is_e164(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or(value);
    let bytes = digits.as_bytes();
    (2..=15).contains(&bytes.len()) && bytes[0] != b'0' && bytes.iter().all(|b| b.is_ascii_digit())
}

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

    /// Applies `rules` in order to `value` (missing counts as empty); records the first failure.
    pub fn check(&mut self, field: &str, value: Option<&str>, rules: &[Rule]) {
        let value = value.unwrap_or("");
        if let Some(reason) = rules.iter().find_map(|rule| rule.check(value).err()) {
            self.add(field, reason);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_field_and_end_with_a_period() {
        let mut errors = ValidationErrors::new();
        errors.check("phone", None, &[Rule::Required]);
        errors.check("message", Some(""), &[Rule::Required]);
        assert_eq!(
            errors.to_string(),
            "message: cannot be blank; phone: cannot be blank."
        );
    }

    #[test]
    fn only_the_first_failing_rule_of_a_field_is_reported() {
        let mut errors = ValidationErrors::new();
        errors.check(
            "phone",
            Some("+0123"),
            &[Rule::Required, Rule::E164, Rule::Length(10, 15)],
        );
        assert_eq!(errors.to_string(), "phone: must be a valid E164 number.");
    }

    #[test]
    fn length_counts_bytes_and_names_its_bounds() {
        let mut errors = ValidationErrors::new();
        errors.check(
            "phone",
            Some("12345"),
            &[Rule::Required, Rule::Length(10, 25)],
        );
        assert_eq!(
            errors.to_string(),
            "phone: the length must be between 10 and 25."
        );

        let mut errors = ValidationErrors::new();
        // 67 two-byte characters: 134 bytes, within 200 characters but still fine;
        // 101 of them make 202 bytes, over the limit.
        errors.check("caption", Some(&"é".repeat(101)), &[Rule::Length(0, 200)]);
        assert_eq!(
            errors.to_string(),
            "caption: the length must be no more than 200."
        );
    }

    #[test]
    fn rules_other_than_required_accept_an_empty_value() {
        let mut errors = ValidationErrors::new();
        errors.check(
            "caption",
            Some(""),
            &[Rule::Length(1, 5), Rule::E164, Rule::PhoneDigits],
        );
        assert!(errors.is_empty());
    }

    #[test]
    fn e164_accepts_plus_and_rejects_leading_zero_and_letters() {
        assert!(is_e164("+6281234567890"));
        assert!(is_e164("6281234567890"));
        assert!(!is_e164("0812345678"));
        assert!(!is_e164("62812abc"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+"));
    }

    #[test]
    fn phone_digits_allows_one_leading_plus_only() {
        assert_eq!(Rule::PhoneDigits.check("+628123"), Ok(()));
        assert!(Rule::PhoneDigits.check("62-812").is_err());
        assert!(Rule::PhoneDigits.check("++62").is_err());
    }
}
