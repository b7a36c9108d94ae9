//! Money: raw amounts are unsigned 256-bit integers in a currency's base units; UI amounts
//! are exact decimal strings. Conversion in both directions uses the currency's decimals and
//! never touches floating point.

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a decimal string is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must be a plain decimal number such as \"100.25\"")]
    NotNumeric,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount must be greater than zero")]
    Zero,
    #[error("amount has more than {max} decimal places")]
    TooManyDecimals { max: u8 },
    #[error("amount is too large")]
    Overflow,
    #[error("amount must be at most {MAX_ORDER_UNITS} (10^15)")]
    AboveOrderLimit,
}

/// The largest amount an order may state, in whole units of its currency or fiat unit
/// (10^15). Far above any real order; an amount this size is held exactly by the decimal
/// type prices are read into (28 significant digits), and its conversion to base units is
/// exact whatever the price (integer arithmetic: [`fiat_to_raw_ceil`]).
pub const MAX_ORDER_UNITS: u64 = 1_000_000_000_000_000;

/// A decimal number from its text (`3000.12`, `1.2e-5`), exactly or not at all: a number
/// a decimal would hold only rounded (past its 28 significant digits) is `None`, never
/// rounded, so no price or amount read from a provider moves by rounding.
pub fn exact_decimal(text: &str) -> Option<rust_decimal::Decimal> {
    use rust_decimal::Decimal;
    // Zeros that end a fraction change nothing, however many (`0.1000…0` is 0.1).
    let trim = |base: &str| -> String {
        match base.split_once('.') {
            Some((whole, fraction)) => {
                let fraction = fraction.trim_end_matches('0');
                if fraction.is_empty() {
                    whole.to_owned()
                } else {
                    format!("{whole}.{fraction}")
                }
            }
            None => base.to_owned(),
        }
    };
    match text.split_once(['e', 'E']) {
        None => Decimal::from_str_exact(&trim(text)).ok(),
        // The base exactly; the exponent then only moves the point, or fails.
        Some((base, exponent)) => {
            let base = trim(base);
            Decimal::from_str_exact(&base).ok()?;
            Decimal::from_scientific(&format!("{base}e{exponent}")).ok()
        }
    }
}

/// An amount in base units (wei, lamports, 10^-6 USDC…). Serialized as a decimal string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RawAmount(U256);

impl RawAmount {
    pub const ZERO: RawAmount = RawAmount(U256::ZERO);

    pub fn new(v: U256) -> Self {
        Self(v)
    }

    pub fn from_u128(v: u128) -> Self {
        Self(U256::from(v))
    }

    pub fn value(&self) -> U256 {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn checked_add(self, other: RawAmount) -> Option<RawAmount> {
        self.0.checked_add(other.0).map(RawAmount)
    }

    pub fn checked_mul_u64(self, n: u64) -> Option<RawAmount> {
        self.0.checked_mul(U256::from(n)).map(RawAmount)
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: RawAmount) -> RawAmount {
        RawAmount(self.0.saturating_sub(other.0))
    }

    /// `self * bps / 10_000`, rounded down; None on overflow.
    pub fn mul_bps(self, bps: u32) -> Option<RawAmount> {
        self.0
            .checked_mul(U256::from(bps))
            .map(|v| RawAmount(v / U256::from(10_000u32)))
    }

    /// Parses a base-unit integer string: digits only, no sign, no decimal point.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotNumeric);
        }
        U256::from_str_radix(s, 10)
            .map(RawAmount)
            .map_err(|_| MoneyError::Overflow)
    }

    /// Converts a UI amount (`"100.25"`) into base units for a currency with `decimals`.
    /// Zero is refused: every amount a merchant or payer states must be positive.
    pub fn from_ui(ui: &str, decimals: u8) -> Result<Self, MoneyError> {
        let raw = Self::from_ui_allow_zero(ui, decimals)?;
        if raw.is_zero() {
            return Err(MoneyError::Zero);
        }
        Ok(raw)
    }

    /// As [`RawAmount::from_ui`] but accepts zero (balances, totals).
    pub fn from_ui_allow_zero(ui: &str, decimals: u8) -> Result<Self, MoneyError> {
        let (int_part, frac_part) = split_decimal(ui)?;
        // Trailing zeros carry no value: "1.50" is fine for a 1-decimal currency.
        let frac_part = frac_part.trim_end_matches('0');
        if frac_part.len() > decimals as usize {
            return Err(MoneyError::TooManyDecimals { max: decimals });
        }
        let scale = pow10(decimals as usize)?;
        let int = U256::from_str_radix(int_part, 10).map_err(|_| MoneyError::Overflow)?;
        let frac = if frac_part.is_empty() {
            U256::ZERO
        } else {
            let digits = U256::from_str_radix(frac_part, 10).map_err(|_| MoneyError::Overflow)?;
            digits
                .checked_mul(pow10(decimals as usize - frac_part.len())?)
                .ok_or(MoneyError::Overflow)?
        };
        int.checked_mul(scale)
            .and_then(|v| v.checked_add(frac))
            .map(RawAmount)
            .ok_or(MoneyError::Overflow)
    }

    /// The exact decimal form: `100000000` with 6 decimals is `"100.0"`; at least one digit
    /// after the point, trailing zeros beyond it trimmed.
    pub fn to_ui(&self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let d = decimals as usize;
        let (int_part, frac_part) = if digits.len() > d {
            let (i, f) = digits.split_at(digits.len() - d);
            (i.to_owned(), f.to_owned())
        } else {
            ("0".to_owned(), format!("{digits:0>d$}"))
        };
        let frac = frac_part.trim_end_matches('0');
        if frac.is_empty() {
            format!("{int_part}.0")
        } else {
            format!("{int_part}.{frac}")
        }
    }
}

fn pow10(exp: usize) -> Result<U256, MoneyError> {
    U256::from(10u8)
        .checked_pow(U256::from(exp))
        .ok_or(MoneyError::Overflow)
}

/// Splits `"12.340"` into `("12", "340")`, rejecting anything that is not a plain decimal.
fn split_decimal(s: &str) -> Result<(&str, &str), MoneyError> {
    if s.is_empty() {
        return Err(MoneyError::Empty);
    }
    if s.starts_with('-') {
        return Err(MoneyError::Negative);
    }
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
        || (s.contains('.') && frac_part.is_empty())
    {
        return Err(MoneyError::NotNumeric);
    }
    Ok((int_part, frac_part))
}

/// `fiat / price` in base units of a currency with `decimals`, rounded up (so a merchant
/// paid this much receives at least the fiat price, and a payer pays less than one base unit
/// more); `None` if the price is not positive or the result does not fit. Computed exactly in
/// integers: with `fiat = f / 10^fs` and `price = p / 10^ps`, it is
/// `ceil(f × 10^(ps + decimals) / (p × 10^fs))`, where a division in `Decimal` would round
/// at 28 digits and overflow above about 7.9 × 10^28 base units.
pub fn fiat_to_raw_ceil(
    fiat: rust_decimal::Decimal,
    price: rust_decimal::Decimal,
    decimals: u8,
) -> Option<RawAmount> {
    use rust_decimal::Decimal;
    if price <= Decimal::ZERO || fiat <= Decimal::ZERO {
        return None;
    }
    let mantissa = |d: Decimal| U256::from(d.mantissa().unsigned_abs());
    let owed =
        mantissa(fiat).checked_mul(pow10(price.scale() as usize + decimals as usize).ok()?)?;
    let unit = mantissa(price).checked_mul(pow10(fiat.scale() as usize).ok()?)?;
    let (whole, rest) = owed.div_rem(unit);
    let raw = if rest.is_zero() {
        whole
    } else {
        whole.checked_add(U256::from(1u8))?
    };
    (!raw.is_zero()).then_some(RawAmount(raw))
}

/// An amount an order states (`"100.25"`, in a currency with `decimals` or a fiat unit):
/// positive, at most `decimals` places, at most [`MAX_ORDER_UNITS`] whole units.
pub fn parse_order_amount(ui: &str, decimals: u8) -> Result<RawAmount, MoneyError> {
    let raw = RawAmount::from_ui(ui, decimals)?;
    let limit = U256::from(MAX_ORDER_UNITS)
        .checked_mul(pow10(decimals as usize)?)
        .ok_or(MoneyError::Overflow)?;
    if raw.0 > limit {
        return Err(MoneyError::AboveOrderLimit);
    }
    Ok(raw)
}

/// Checks a fiat or display decimal (e.g. `"49.99"` USD) with at most `max_decimals` places,
/// returning its canonical UI form.
pub fn parse_positive_decimal(s: &str, max_decimals: u8) -> Result<String, MoneyError> {
    RawAmount::from_ui(s, max_decimals).map(|raw| raw.to_ui(max_decimals))
}

impl fmt::Display for RawAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for RawAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawAmount({})", self.0)
    }
}

impl Serialize for RawAmount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for RawAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount as seed 002 shows it: `{"raw": "100000000", "ui": "100.0", "value_usd": 100}`.
/// `value_usd` is for display only and is never used in accounting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amount {
    pub raw: RawAmount,
    pub ui: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub value_usd: Option<serde_json::Number>,
}

impl Amount {
    /// The amount as a decimal number (from `ui`), for a provider that reads decimals;
    /// `None` when a decimal would hold it only rounded (past 28 significant digits).
    pub fn decimal(&self) -> Option<rust_decimal::Decimal> {
        exact_decimal(&self.ui)
    }

    pub fn new(raw: RawAmount, decimals: u8) -> Self {
        Self {
            raw,
            ui: raw.to_ui(decimals),
            value_usd: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_to_raw_and_back() {
        let cases = [
            ("100", 6, "100000000", "100.0"),
            ("100.0", 6, "100000000", "100.0"),
            ("0.000001", 6, "1", "0.000001"),
            ("1.50", 1, "15", "1.5"),
            (
                "1.000000000000000001",
                18,
                "1000000000000000001",
                "1.000000000000000001",
            ),
            ("5", 0, "5", "5.0"),
            ("007.25", 2, "725", "7.25"),
        ];
        for (ui, dec, raw, back) in cases {
            let r = RawAmount::from_ui(ui, dec).unwrap();
            assert_eq!(r.to_string(), raw, "{ui}");
            assert_eq!(r.to_ui(dec), back, "{ui}");
        }
    }

    #[test]
    fn every_refusal_is_typed() {
        use MoneyError::*;
        let cases: [(&str, u8, MoneyError); 14] = [
            ("", 6, Empty),
            ("-1", 6, Negative),
            ("-0.5", 6, Negative),
            ("0", 6, Zero),
            ("0.000", 6, Zero),
            ("1.0000001", 6, TooManyDecimals { max: 6 }),
            ("1.5", 0, TooManyDecimals { max: 0 }),
            ("abc", 6, NotNumeric),
            ("1e6", 6, NotNumeric),
            ("+1", 6, NotNumeric),
            (".5", 6, NotNumeric),
            ("5.", 6, NotNumeric),
            ("1,000", 6, NotNumeric),
            ("1 ", 6, NotNumeric),
        ];
        for (ui, dec, want) in cases {
            assert_eq!(RawAmount::from_ui(ui, dec), Err(want), "{ui:?}");
        }
        // 2^256 is about 1.16e77: 78 digits overflows, and so does scaling a smaller integer.
        let huge = "9".repeat(78);
        assert_eq!(RawAmount::from_ui(&huge, 0), Err(Overflow));
        let big = "1".repeat(70);
        assert_eq!(RawAmount::from_ui(&big, 18), Err(Overflow));
        assert_eq!(RawAmount::parse(&huge), Err(Overflow));
    }

    #[test]
    fn order_amounts_stop_at_ten_to_the_fifteen() {
        let max = "1000000000000000";
        assert_eq!(
            parse_order_amount(max, 18).unwrap(),
            RawAmount::from_ui(max, 18).unwrap()
        );
        assert_eq!(
            parse_order_amount("1000000000000000.000001", 6),
            Err(MoneyError::AboveOrderLimit)
        );
        assert_eq!(
            parse_order_amount("99999999999999999999999999999", 2),
            Err(MoneyError::AboveOrderLimit)
        );
        assert_eq!(parse_order_amount("0", 2), Err(MoneyError::Zero));
        assert_eq!(
            parse_order_amount("1.001", 2),
            Err(MoneyError::TooManyDecimals { max: 2 })
        );
    }

    #[test]
    fn max_u256_round_trips() {
        let max = RawAmount::new(U256::MAX);
        let ui = max.to_ui(18);
        assert_eq!(RawAmount::from_ui(&ui, 18).unwrap(), max);
        assert_eq!(RawAmount::parse(&max.to_string()).unwrap(), max);
    }

    #[test]
    fn raw_parse_and_serde() {
        assert_eq!(RawAmount::parse("0").unwrap(), RawAmount::ZERO);
        assert_eq!(RawAmount::parse("1.0"), Err(MoneyError::NotNumeric));
        assert_eq!(RawAmount::parse("-3"), Err(MoneyError::Negative));
        let a = Amount::new(RawAmount::from_u128(100_000_000), 6);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json, serde_json::json!({"raw": "100000000", "ui": "100.0"}));
        let back: Amount = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_value::<RawAmount>(serde_json::json!("0x10")).is_err());
    }

    #[test]
    fn fiat_converts_with_rounding_up() {
        use rust_decimal::Decimal;
        use std::str::FromStr;
        let d = |s: &str| Decimal::from_str(s).unwrap();
        // 49.99 USD at 3000 USD/ETH = 0.016663333... ETH, rounded up at 18 decimals.
        assert_eq!(
            fiat_to_raw_ceil(d("49.99"), d("3000"), 18)
                .unwrap()
                .to_string(),
            "16663333333333334"
        );
        assert_eq!(
            fiat_to_raw_ceil(d("49.99"), d("1"), 6).unwrap().to_string(),
            "49990000"
        );
        assert_eq!(
            fiat_to_raw_ceil(d("10"), d("3"), 6).unwrap().to_string(),
            "3333334"
        );
        // 10 / 0.999876 = 10.00124015..., so 10001240.15... base units, rounded up.
        assert_eq!(
            fiat_to_raw_ceil(d("10"), d("0.999876"), 6)
                .unwrap()
                .to_string(),
            "10001241"
        );
        assert!(fiat_to_raw_ceil(d("10"), d("0"), 6).is_none());
        assert!(fiat_to_raw_ceil(d("0"), d("3"), 6).is_none());
    }

    /// An amount a decimal would hold only rounded has no decimal: a provider asked for
    /// it rounded would pay out less than the order asks (1e11 ETH and 4 wei, 29 digits).
    #[test]
    fn a_decimal_is_exact_or_none() {
        let raw = RawAmount::from_ui("100000000000.000000000000000004", 18).unwrap();
        assert_eq!(Amount::new(raw, 18).decimal(), None);
        let raw = RawAmount::from_ui("10000000000.000000000000000004", 18).unwrap();
        assert_eq!(
            Amount::new(raw, 18).decimal().unwrap().to_string(),
            "10000000000.000000000000000004"
        );
        assert_eq!(exact_decimal("1.5e-3").unwrap().to_string(), "0.0015");
        assert_eq!(exact_decimal("25E2").unwrap().to_string(), "2500");
        // Zeros ending a fraction are no digits a decimal must hold.
        assert_eq!(
            exact_decimal("0.100000000000000000000000000000").unwrap(),
            exact_decimal("0.1").unwrap()
        );
        assert_eq!(
            exact_decimal("3.00000000000000000000000000000000e3").unwrap(),
            exact_decimal("3000").unwrap()
        );
        for refused in [
            "0.00000000000000000000000000005",
            "1.00000000000000000000000000001e2",
            "1e-29",
            "1e29",
            "abc",
            "",
        ] {
            assert_eq!(exact_decimal(refused), None, "{refused}");
        }
    }

    #[test]
    fn bps_and_arithmetic() {
        let a = RawAmount::from_u128(1_000_000);
        assert_eq!(a.mul_bps(50).unwrap(), RawAmount::from_u128(5_000));
        assert_eq!(RawAmount::from_u128(3).saturating_sub(a), RawAmount::ZERO);
        assert!(RawAmount::new(U256::MAX).checked_add(a).is_none());
        assert_eq!(parse_positive_decimal("49.990", 2).unwrap(), "49.99");
        assert_eq!(
            parse_positive_decimal("49.999", 2),
            Err(MoneyError::TooManyDecimals { max: 2 })
        );
    }

    /// Every amount shown to a merchant or payer (`ui`) reads back as exactly the base
    /// units it shows, at every precision: what a payer copies is what the order asks.
    mod display_properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]
            #[test]
            fn an_amount_shown_reads_back_as_itself(
                hi in any::<u128>(),
                lo in any::<u128>(),
                decimals in 0u8..=30,
            ) {
                let raw = RawAmount((U256::from(hi) << 128) | U256::from(lo));
                let ui = raw.to_ui(decimals);
                prop_assert_eq!(RawAmount::from_ui_allow_zero(&ui, decimals), Ok(raw), "{}", ui);
            }
        }
    }

    /// What a fiat price asks for, checked exactly (in integers, not through Decimal's 28
    /// digits) over prices from a meme token's to a bitcoin's, amounts from 0.01 to 100
    /// million, and every currency precision we list: never less than the price (the merchant is paid in
    /// full) and less than one base unit more (the payer is not overcharged).
    mod conversion_properties {
        use super::super::*;
        use proptest::prelude::*;
        use rust_decimal::Decimal;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]
            #[test]
            fn a_fiat_price_converts_to_the_least_amount_that_pays_it(
                fiat_m in 1u64..100_000_000,
                fiat_scale in 0u32..=2,
                price_m in 1u64..10_000_000_000_000_000,
                price_scale in 0u32..=24,
                decimals in prop::sample::select(vec![0u8, 2, 6, 8, 9, 12, 18]),
            ) {
                let fiat = Decimal::new(fiat_m as i64, fiat_scale);
                let price = Decimal::new(price_m as i64, price_scale);
                let raw = fiat_to_raw_ceil(fiat, price, decimals).expect("converts").value();
                // raw base units are raw / 10^decimals of the currency, worth
                // raw * price / 10^decimals of fiat: compare raw * p * 10^fs with
                // f * 10^(ps + decimals), all integers.
                let (f, fs) = (U256::from(fiat_m), fiat_scale);
                let (p, ps) = (U256::from(price_m), price_scale);
                let owed = f * pow10((ps + u32::from(decimals)) as usize).unwrap();
                let worth = |units: U256| units * p * pow10(fs as usize).unwrap();
                prop_assert!(worth(raw) >= owed, "{fiat} at {price}: {raw} pays less");
                prop_assert!(
                    worth(raw - U256::from(1u8)) < owed,
                    "{fiat} at {price}: {raw} asks a unit too many"
                );
            }
        }
    }
}
