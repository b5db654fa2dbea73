//! The beneficiary (payee) model: the single-create input, its validation, and the created
//! beneficiary the back office returns.
//!
//! Parse, don't validate: [`Beneficiary::parse`] turns one untrusted JSON object into a
//! [`Beneficiary`] or into every [`ErrorDetail`] it has, at once, so a client fixes a batch in
//! one round trip. Once you hold a `Beneficiary`, each field is known valid; chunk messages
//! carry validated beneficiaries and re-check them when they are read back.

use crate::error_body::ErrorDetail;
use iban::IbanLike;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields the single-create endpoint accepts; anything else is `unknown_field`.
pub const FIELDS: [&str; 7] = [
    "name",
    "country",
    "currency",
    "iban",
    "bic",
    "email",
    "external_id",
];

/// The fields without which a beneficiary cannot be created.
pub const REQUIRED_FIELDS: [&str; 4] = ["name", "country", "currency", "iban"];

const NAME_MAX_CHARS: usize = 140;
const EXTERNAL_ID_MAX_CHARS: usize = 64;
const EMAIL_MAX_CHARS: usize = 254;

/// A validated beneficiary, as the single-create endpoint takes it. Serialises to the same
/// JSON a client sends (IBAN and BIC in their electronic, upper-case form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Beneficiary {
    name: String,
    country: String,
    currency: String,
    iban: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
}

/// Why a JSON value read back from a queue message is not a beneficiary.
#[derive(Debug, thiserror::Error)]
#[error("invalid beneficiary: {0:?}")]
pub struct InvalidBeneficiary(pub Vec<ErrorDetail>);

impl TryFrom<Map<String, Value>> for Beneficiary {
    type Error = InvalidBeneficiary;
    fn try_from(map: Map<String, Value>) -> Result<Self, Self::Error> {
        Beneficiary::parse_object(&map).map_err(InvalidBeneficiary)
    }
}

impl Beneficiary {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn country(&self) -> &str {
        &self.country
    }
    pub fn currency(&self) -> &str {
        &self.currency
    }
    pub fn iban(&self) -> &str {
        &self.iban
    }
    pub fn bic(&self) -> Option<&str> {
        self.bic.as_deref()
    }
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// Validates one JSON value; all problems are reported, each with its field.
    pub fn parse(value: &Value) -> Result<Self, Vec<ErrorDetail>> {
        match value {
            Value::Object(map) => Self::parse_object(map),
            _ => Err(vec![ErrorDetail {
                index: None,
                line: None,
                external_id: None,
                field: None,
                code: "invalid_type".into(),
                message: "Each beneficiary must be a JSON object.".into(),
            }]),
        }
    }

    fn parse_object(map: &Map<String, Value>) -> Result<Self, Vec<ErrorDetail>> {
        let mut errors = Vec::new();
        for key in map.keys() {
            if !FIELDS.contains(&key.as_str()) {
                errors.push(ErrorDetail::field(
                    key.as_str(),
                    "unknown_field",
                    "This field is not accepted.",
                ));
            }
        }
        let mut text = |field: &'static str, required: bool| -> Option<&str> {
            match map.get(field) {
                None | Some(Value::Null) if required => {
                    errors.push(ErrorDetail::field(
                        field,
                        "required",
                        "This field is required.",
                    ));
                    None
                }
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => {
                    errors.push(ErrorDetail::field(
                        field,
                        "invalid_type",
                        "This field must be a string.",
                    ));
                    None
                }
            }
        };
        let name = text("name", true);
        let country = text("country", true);
        let currency = text("currency", true);
        let iban = text("iban", true);
        let bic = text("bic", false);
        let email = text("email", false);
        let external_id = text("external_id", false);

        let mut check =
            |field: &'static str, result: Result<String, (&'static str, &'static str)>| {
                result
                    .map_err(|(code, message)| {
                        errors.push(ErrorDetail::field(field, code, message))
                    })
                    .ok()
            };
        let name = name.and_then(|v| check("name", parse_name(v)));
        let country = country.and_then(|v| check("country", parse_country(v)));
        let currency = currency.and_then(|v| check("currency", parse_currency(v)));
        let iban = iban.and_then(|v| check("iban", parse_iban(v)));
        let bic = bic.map(|v| check("bic", parse_bic(v)));
        let email = email.map(|v| check("email", parse_email(v)));
        let external_id = external_id.map(|v| check("external_id", parse_external_id(v)));

        match (name, country, currency, iban) {
            (Some(name), Some(country), Some(currency), Some(iban)) if errors.is_empty() => {
                Ok(Self {
                    name,
                    country,
                    currency,
                    iban,
                    bic: bic.flatten(),
                    email: email.flatten(),
                    external_id: external_id.flatten(),
                })
            }
            _ => Err(errors),
        }
    }
}

type FieldResult = Result<String, (&'static str, &'static str)>;

fn parse_name(v: &str) -> FieldResult {
    let trimmed = v.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(("too_short", "The name must not be empty."));
    }
    if chars > NAME_MAX_CHARS {
        return Err(("too_long", "The name takes at most 140 characters."));
    }
    if trimmed.chars().any(char::is_control) {
        return Err((
            "invalid_characters",
            "The name must not contain control characters.",
        ));
    }
    if trimmed.chars().any(is_bidi_control) {
        return Err((
            "invalid_characters",
            "The name must not contain text-direction controls.",
        ));
    }
    if trimmed
        .chars()
        .all(|c| c.is_whitespace() || is_invisible(c))
    {
        return Err((
            "invalid_characters",
            "The name must contain visible characters.",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Unicode's explicit direction embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069) and marks (U+200E, U+200F, U+061C): they make a payee's name display as
/// something other than what it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that render as nothing: zero-width spaces and joiners, the word joiner and
/// invisible operators, the byte-order mark, soft hyphen, Mongolian vowel separator, combining
/// grapheme joiner and the Hangul fillers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{FFA0}'
    ) || is_bidi_control(c)
}

fn parse_country(v: &str) -> FieldResult {
    let well_formed = v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase());
    if well_formed && celes::Country::from_alpha2(v).is_ok() {
        Ok(v.to_owned())
    } else {
        Err((
            "invalid_country",
            "Use an ISO 3166-1 alpha-2 country code, such as \"FR\".",
        ))
    }
}

fn parse_currency(v: &str) -> FieldResult {
    let well_formed = v.len() == 3 && v.bytes().all(|b| b.is_ascii_uppercase());
    if well_formed && v.parse::<iso_currency::Currency>().is_ok() {
        Ok(v.to_owned())
    } else {
        Err((
            "invalid_currency",
            "Use an ISO 4217 currency code, such as \"EUR\".",
        ))
    }
}

/// Accepts the electronic form and the grouped print form (spaces every four characters).
fn parse_iban(v: &str) -> FieldResult {
    use iban::{ParseBaseIbanError, ParseIbanError};
    let electronic: String = v
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    match electronic.parse::<iban::Iban>() {
        Ok(parsed) => Ok(parsed.electronic_str().to_owned()),
        Err(ParseIbanError::InvalidBaseIban {
            source: ParseBaseIbanError::InvalidChecksum,
        }) => Err(("invalid_checksum", "The IBAN check digits do not match.")),
        // The crate's country list lags the registry's releases: a registry country it does
        // not know yet is checked against the registry's length and the check digits.
        Err(ParseIbanError::UnknownCountry(_)) if crate::iban_registry::is_valid(&electronic) => {
            Ok(electronic)
        }
        Err(ParseIbanError::UnknownCountry(_)) => Err((
            "unknown_iban_country",
            "The IBAN's country does not use IBANs.",
        )),
        Err(ParseIbanError::InvalidBban(_))
            if crate::iban_registry::is_revised(&electronic)
                && crate::iban_registry::is_valid(&electronic) =>
        {
            Ok(electronic)
        }
        Err(ParseIbanError::InvalidBban(_)) => Err((
            "invalid_bban",
            "The IBAN's length or structure does not match its country's format.",
        )),
        Err(_) => Err(("invalid_format", "The IBAN is not well formed.")),
    }
}

/// ISO 9362: 4 letters (institution), 2 letters (country), 2 alphanumerics (location),
/// optionally 3 alphanumerics (branch).
fn parse_bic(v: &str) -> FieldResult {
    let b = v.as_bytes();
    let ok = (b.len() == 8 || b.len() == 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && celes::Country::from_alpha2(&v[4..6]).is_ok();
    if ok {
        Ok(v.to_owned())
    } else {
        Err((
            "invalid_bic",
            "The BIC must be 8 or 11 characters, such as \"DEUTDEFF\".",
        ))
    }
}

/// A plain addr-spec (`local@domain`): no display name (`Ada <ada@example.com>`) and no
/// IP-literal domain (`ada@[192.0.2.1]`).
fn parse_email(v: &str) -> FieldResult {
    use email_address::{EmailAddress, Options};
    let options = Options::default()
        .without_display_text()
        .without_domain_literal();
    if v.chars().count() <= EMAIL_MAX_CHARS && EmailAddress::parse_with_options(v, options).is_ok()
    {
        Ok(v.to_owned())
    } else {
        Err(("invalid_email", "The e-mail address is not valid."))
    }
}

fn parse_external_id(v: &str) -> FieldResult {
    let chars = v.chars().count();
    if chars == 0 || chars > EXTERNAL_ID_MAX_CHARS {
        return Err((
            "invalid_length",
            "The external_id takes 1 to 64 characters.",
        ));
    }
    if v.chars().any(char::is_control) {
        return Err((
            "invalid_characters",
            "The external_id must not contain control characters.",
        ));
    }
    Ok(v.to_owned())
}

/// A beneficiary as the back office created it: the single-create endpoint's output shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedBeneficiary {
    pub id: String,
    pub name: String,
    pub country: String,
    pub currency: String,
    pub iban: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ibans::with_check_digits;
    use serde_json::json;

    fn valid() -> Value {
        json!({"name": "Ada Lovelace", "country": "GB", "currency": "GBP",
               "iban": "GB82 WEST 1234 5698 7654 32"})
    }

    fn codes(value: Value) -> Vec<(String, String)> {
        match Beneficiary::parse(&value) {
            Ok(_) => vec![],
            Err(errors) => errors
                .into_iter()
                .map(|e| (e.field.unwrap_or_default(), e.code))
                .collect(),
        }
    }

    /// Specimen IBANs published by the national registries (SWIFT IBAN registry examples).
    #[test]
    fn accepts_real_iban_specimens() {
        let specimens = [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "ES9121000418450200051332",
            "IT60X0542811101000000123456",
            "CH9300762011623852957",
            "AT611904300234573201",
            "NO9386011117947",
            "PL61109010140000071219812874",
            "SE4550000000058398257466",
            "GB33BUKB20201555555555",
        ];
        for iban in specimens {
            let mut v = valid();
            v["iban"] = json!(iban);
            let b = Beneficiary::parse(&v).unwrap_or_else(|e| panic!("{iban}: {e:?}"));
            assert_eq!(b.iban(), iban);
        }
    }

    #[test]
    fn rejects_corrupted_ibans_with_a_precise_code() {
        let cases = [
            ("GB82WEST12345698765433", "invalid_checksum"), // last digit changed
            ("DE89370400440532013001", "invalid_checksum"),
            ("DE8937040044053201300", "invalid_checksum"), // one digit short
            ("GB82-WEST", "invalid_format"),
            ("", "invalid_format"),
        ];
        for (iban, code) in cases {
            let mut v = valid();
            v["iban"] = json!(iban);
            assert_eq!(codes(v), vec![("iban".into(), code.into())], "{iban}");
        }
    }

    #[test]
    fn checksum_valid_but_wrong_structure_is_invalid_bban() {
        for (country, bban) in [
            ("DE", "370400440532013"),
            ("GB", "WEST123456987654321"),
            ("NL", "12ABNA0417164300"),
        ] {
            // Correct check digits around a wrong BBAN, to reach the structure check.
            let iban = with_check_digits(country, bban);
            let mut v = valid();
            v["iban"] = json!(iban);
            assert_eq!(
                codes(v),
                vec![("iban".into(), "invalid_bban".into())],
                "{iban}"
            );
        }
        let unknown_country = with_check_digits("XX", "WEST12345698765432");
        let mut v = valid();
        v["iban"] = json!(unknown_country);
        assert_eq!(
            codes(v),
            vec![("iban".into(), "unknown_iban_country".into())]
        );
        // The helper itself agrees with a real specimen.
        assert_eq!(
            with_check_digits("DE", "370400440532013000"),
            "DE89370400440532013000"
        );
    }

    /// Every country of the SWIFT IBAN Registry is accepted, whatever the crate knows.
    #[test]
    fn every_registry_example_iban_is_accepted() {
        for example in crate::iban_registry::tests::EXAMPLES {
            let mut v = valid();
            v["iban"] = json!(example);
            assert!(Beneficiary::parse(&v).is_ok(), "{example}: {:?}", codes(v));
        }
    }

    #[test]
    fn field_rules() {
        let long_name = "x".repeat(141);
        let cases: Vec<(&str, Value, &str)> = vec![
            ("name", json!(""), "too_short"),
            ("name", json!("   "), "too_short"),
            ("name", json!(long_name), "too_long"),
            ("name", json!("a\u{0007}b"), "invalid_characters"),
            ("name", json!(42), "invalid_type"),
            ("name", Value::Null, "required"),
            ("country", json!("fr"), "invalid_country"),
            ("country", json!("ZZ"), "invalid_country"),
            ("country", json!("FRA"), "invalid_country"),
            ("currency", json!("eur"), "invalid_currency"),
            ("currency", json!("ABC"), "invalid_currency"),
            ("bic", json!("DEUTDEF"), "invalid_bic"),
            ("bic", json!("DEUTZZFF"), "invalid_bic"),
            ("bic", json!("deutdeff"), "invalid_bic"),
            ("name", json!("\u{200B}\u{200B}"), "invalid_characters"),
            ("name", json!("\u{FEFF} \u{2060}"), "invalid_characters"),
            ("name", json!("Ada \u{202E}ecalevoL"), "invalid_characters"),
            ("name", json!("Ada\u{2066}x\u{2069}"), "invalid_characters"),
            ("email", json!("not-an-email"), "invalid_email"),
            ("email", json!("Ada <ada@example.com>"), "invalid_email"),
            ("email", json!("ada@[192.0.2.1]"), "invalid_email"),
            ("external_id", json!(""), "invalid_length"),
            ("external_id", json!("x".repeat(65)), "invalid_length"),
        ];
        for (field, value, code) in cases {
            let mut v = valid();
            v[field] = value.clone();
            assert_eq!(
                codes(v),
                vec![(field.to_string(), code.to_string())],
                "{field}={value}"
            );
        }
    }

    #[test]
    fn optional_fields_accepted_when_valid() {
        let mut v = valid();
        v["bic"] = json!("DEUTDEFF500");
        v["email"] = json!("ada.lovelace+payee@example.co.uk");
        v["external_id"] = json!("crm-42");
        v["name"] = json!("Zoë O’Brien-Łukasik 李");
        let b = Beneficiary::parse(&v).unwrap();
        assert_eq!(b.bic(), Some("DEUTDEFF500"));
        assert_eq!(b.external_id(), Some("crm-42"));
        assert_eq!(
            b.iban(),
            "GB82WEST12345698765432",
            "normalised to electronic form"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errors = codes(json!({"name": "", "iban": "GB00", "colour": "blue"}));
        assert!(errors.contains(&("colour".into(), "unknown_field".into())));
        assert!(errors.contains(&("country".into(), "required".into())));
        assert!(errors.contains(&("currency".into(), "required".into())));
        assert!(errors.contains(&("name".into(), "too_short".into())));
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn non_objects_are_rejected() {
        assert_eq!(
            codes(json!([1])),
            vec![(String::new(), "invalid_type".into())]
        );
    }

    #[test]
    fn round_trips_through_json() {
        let b = Beneficiary::parse(&valid()).unwrap();
        let back: Beneficiary = serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        let tampered = json!({"name": "x", "country": "GB", "currency": "GBP", "iban": "GB00"});
        assert!(serde_json::from_value::<Beneficiary>(tampered).is_err());
    }
}
