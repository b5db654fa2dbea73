//! IBANs for tests and benchmarks: valid check digits (ISO 13616, mod 97) around any BBAN, and
//! distinct German ones by account number. One generator, so no copy can drift.

/// `{country}{check digits}{bban}` with the check digits that make it valid; letters count as
/// 10..35, as the standard says.
pub fn with_check_digits(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let rem = rearranged.chars().fold(0u32, |acc, c| {
        let value = c.to_digit(36).unwrap_or(0);
        if value >= 10 {
            (acc * 100 + value) % 97
        } else {
            (acc * 10 + value) % 97
        }
    });
    format!("{country}{:02}{bban}", 98 - rem)
}

/// A valid German IBAN for account number `n` (bank code 37040044).
pub fn german(n: u64) -> String {
    with_check_digits("DE", &format!("37040044{n:010}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ibans_match_published_specimens() {
        // The registry's published examples.
        assert_eq!(german(532_013_000), "DE89370400440532013000");
        assert_eq!(
            with_check_digits("GB", "WEST12345698765432"),
            "GB82WEST12345698765432"
        );
        assert_eq!(
            with_check_digits("NL", "ABNA0417164300"),
            "NL91ABNA0417164300"
        );
    }
}
