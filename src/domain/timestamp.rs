//! The `server timestamp` text of send results: Go's `time.Time` layout in the
//! server's local zone, e.g. `2022-02-11 10:43:29 +0700 WIB`.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Formats `ts` in the zone of this machine (`TZ`, else `/etc/localtime`, else UTC).
pub fn server_time(ts: Timestamp) -> String {
    server_time_in(ts, &TimeZone::system())
}

/// Formats `ts` in `zone`.
pub fn server_time_in(ts: Timestamp, zone: &TimeZone) -> String {
    ts.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %z %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_in_a_named_zone() {
        let ts = Timestamp::from_second(1_644_550_409).unwrap();
        let jakarta = TimeZone::get("Asia/Jakarta").unwrap();
        assert_eq!(
            server_time_in(ts, &jakarta),
            "2022-02-11 10:33:29 +0700 WIB"
        );
    }

    #[test]
    fn formats_utc_with_a_zero_offset() {
        let ts = Timestamp::from_second(0).unwrap();
        assert_eq!(
            server_time_in(ts, &TimeZone::UTC),
            "1970-01-01 00:00:00 +0000 UTC"
        );
    }
}
