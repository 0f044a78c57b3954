//! The device names of `/user/info`, looked up from the device index of a JID.

/// Name of the platform behind device index `index`, as the v2.3.0 API reports it.
pub fn device_name(index: u16) -> &'static str {
    match index {
        3 => "CHROME",
        4 => "FIREFOX",
        5 => "IE",
        6 => "OPERA",
        7 => "SAFARI",
        8 => "EDGE",
        9 => "DESKTOP",
        10 => "IPAD",
        11 => "ANDROID_TABLET",
        12 => "OHANA",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_indexes_have_their_names() {
        let expected = [
            (2, "UNKNOWN"),
            (3, "CHROME"),
            (4, "FIREFOX"),
            (5, "IE"),
            (6, "OPERA"),
            (7, "SAFARI"),
            (8, "EDGE"),
            (9, "DESKTOP"),
            (10, "IPAD"),
            (11, "ANDROID_TABLET"),
            (12, "OHANA"),
        ];
        for (index, name) in expected {
            assert_eq!(device_name(index), name, "index {index}");
        }
    }

    #[test]
    fn anything_else_is_unknown() {
        for index in [0, 1, 13, 99, u16::MAX] {
            assert_eq!(device_name(index), "UNKNOWN");
        }
    }
}
