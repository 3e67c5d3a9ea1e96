//! Kubernetes resource quantities (`500m`, `0.5`, `128Mi`, `1e3`, `1.5Gi`) parsed with exact
//! integer arithmetic, following the grammar of apimachinery's `resource.Quantity`:
//!
//! ```text
//! quantity  ::= [sign] number suffix
//! number    ::= digits | digits "." digits | digits "." | "." digits
//! suffix    ::= "" | "m" | "k" | "M" | "G" | "T" | "P" | "E"      (powers of ten)
//!             | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"          (powers of two)
//!             | ("e" | "E") [sign] digits                       (decimal exponent)
//! ```
//! Owns no state; callers decide what a quantity means (millicores, bytes).

use std::cmp::Ordering;

/// Why a quantity string is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error(
        "quantity {0:?} must be a number with an optional suffix, like 500m, 0.5, 128Mi or 1e3"
    )]
    Syntax(String),
    #[error("quantity {quantity:?} has unknown suffix {suffix:?} (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>)")]
    Suffix { quantity: String, suffix: String },
    #[error("quantity {0:?} is too large or too precise")]
    OutOfRange(String),
    #[error("quantity {0:?} must be greater than or equal to 0")]
    Negative(String),
}

/// An exact quantity: `±mantissa × 10^pow10 × 2^pow2`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    pow10: i32,
    pow2: u32,
    format: Format,
}

/// How the quantity was written, which decides how it is printed back (Go's `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `Ki`, `Mi`, ...
    BinarySI,
    /// `e3`, `E-2`, ...
    DecimalExponent,
    /// No suffix, or `m`, `k`, `M`, ...
    DecimalSI,
}

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const DECIMAL_SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];

/// Largest decimal exponent accepted; far beyond any real resource amount.
const MAX_EXPONENT: i32 = 1000;

/// Parses a quantity string with the full Kubernetes grammar.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let syntax = || QuantityError::Syntax(s.to_string());
    let (negative, rest) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(syntax());
    }
    let frac_part = frac_part.trim_end_matches('0');
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 38 {
        return Err(QuantityError::OutOfRange(s.to_string()));
    }
    let mantissa = if digits.is_empty() {
        0
    } else {
        digits.parse::<u128>().map_err(|_| syntax())?
    };
    let mut pow10 = -(frac_part.len() as i32);
    let mut pow2 = 0;
    let format = match suffix {
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => Format::BinarySI,
        s if s.starts_with(['e', 'E']) => Format::DecimalExponent,
        _ => Format::DecimalSI,
    };
    match suffix {
        "" => {}
        "m" => pow10 -= 3,
        "k" => pow10 += 3,
        "M" => pow10 += 6,
        "G" => pow10 += 9,
        "T" => pow10 += 12,
        "P" => pow10 += 15,
        "E" => pow10 += 18,
        "Ki" => pow2 = 10,
        "Mi" => pow2 = 20,
        "Gi" => pow2 = 30,
        "Ti" => pow2 = 40,
        "Pi" => pow2 = 50,
        "Ei" => pow2 = 60,
        _ => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .filter(|e| {
                    let d = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
                })
                .ok_or_else(|| QuantityError::Suffix {
                    quantity: s.to_string(),
                    suffix: suffix.to_string(),
                })?;
            let exponent: i32 = exponent
                .parse()
                .ok()
                .filter(|e: &i32| e.abs() <= MAX_EXPONENT)
                .ok_or_else(|| QuantityError::OutOfRange(s.to_string()))?;
            pow10 += exponent;
        }
    }
    let q = Quantity {
        negative: negative && mantissa != 0,
        mantissa,
        pow10,
        pow2,
        format,
    };
    // Every quantity must be representable in millis, as Kubernetes' MilliValue needs.
    if q.scaled_ceil(3).is_none() {
        return Err(QuantityError::OutOfRange(s.to_string()));
    }
    Ok(q)
}

impl Quantity {
    /// `ceil(value × 10^extra)`, or None when it does not fit an i128.
    fn scaled_ceil(&self, extra: i32) -> Option<i128> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let n = self.mantissa.checked_mul(1u128.checked_shl(self.pow2)?)?;
        let e = self.pow10 + extra;
        let (whole, inexact) = if e >= 0 {
            (n.checked_mul(10u128.checked_pow(e.unsigned_abs())?)?, false)
        } else if e < -38 {
            (0, true)
        } else {
            let d = 10u128.pow(e.unsigned_abs());
            (n / d, n % d != 0)
        };
        let whole = i128::try_from(whole).ok()?;
        Some(match (self.negative, inexact) {
            (true, _) => -whole,
            (false, true) => whole + 1,
            (false, false) => whole,
        })
    }

    /// The value in thousandths, rounded up (Kubernetes `MilliValue`): `0.1m` cpu is 1 millicore.
    pub fn milli_value_ceil(&self) -> i128 {
        self.scaled_ceil(3).unwrap_or(i128::MAX)
    }

    /// The value in whole units, rounded up (Kubernetes `Value`): `0.5` bytes is 1 byte.
    pub fn value_ceil(&self) -> i128 {
        self.scaled_ceil(0).unwrap_or(i128::MAX)
    }

    /// True for quantities below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Exact comparison of two quantities' values.
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        match (self.negative, other.negative) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let magnitude = self.cmp_magnitude(other);
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }

    /// The value in units of 10^-`scale`, when it is exactly that many.
    fn exact_scaled(&self, scale: i32) -> Option<u128> {
        let n = self.mantissa.checked_mul(1u128.checked_shl(self.pow2)?)?;
        let e = self.pow10 + scale;
        if e >= 0 {
            n.checked_mul(10u128.checked_pow(e.unsigned_abs())?)
        } else {
            let d = 10u128.checked_pow(e.unsigned_abs())?;
            (n % d == 0).then_some(n / d)
        }
    }

    /// The canonical text the API server prints for this quantity (Go's `Quantity.String()`):
    /// the largest suffix that keeps the number whole, in the form it was written with
    /// (`10240Ki` is `10Mi`, `1000k` is `1M`, `0.5` is `500m`); binary forms under 1024 print
    /// as decimal. None when the value needs a precision finer than nano units.
    pub fn canonical(&self) -> Option<String> {
        let sign = if self.negative { "-" } else { "" };
        if let Some(units) = self.exact_scaled(0) {
            if units == 0 {
                return Some("0".into());
            }
            let (step, suffixes) = if self.format == Format::BinarySI && units >= 1024 {
                (1024, BINARY_SUFFIXES)
            } else {
                (1000, DECIMAL_SUFFIXES)
            };
            let (mut n, mut k) = (units, 0);
            while k + 1 < suffixes.len() && n % step == 0 {
                n /= step;
                k += 1;
            }
            let suffix = match (self.format, step) {
                (Format::DecimalExponent, 1000) if k > 0 => format!("e{}", 3 * k),
                _ => suffixes[k].to_string(),
            };
            return Some(format!("{sign}{n}{suffix}"));
        }
        [(3, "m"), (6, "u"), (9, "n")]
            .iter()
            .find_map(|(scale, suffix)| {
                let n = self.exact_scaled(*scale)?;
                let suffix = if self.format == Format::DecimalExponent {
                    format!("e-{scale}")
                } else {
                    suffix.to_string()
                };
                Some(format!("{sign}{n}{suffix}"))
            })
    }

    /// The exact sum of two non-negative quantities, in `self`'s format, as Go's
    /// `Quantity.Add` keeps the receiver's (the pod's aggregate requests print in the first
    /// container's form). None for negatives, or beyond nano precision or the range.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        if self.negative || other.negative {
            return None;
        }
        const NANO: i32 = 9;
        let sum = self
            .exact_scaled(NANO)?
            .checked_add(other.exact_scaled(NANO)?)?;
        Some(Quantity {
            negative: false,
            mantissa: sum,
            pow10: -NANO,
            pow2: 0,
            format: self.format,
        })
    }

    fn cmp_magnitude(&self, other: &Quantity) -> Ordering {
        let exact = |q: &Quantity, low: i32| -> Option<u128> {
            let n = q.mantissa.checked_mul(1u128.checked_shl(q.pow2)?)?;
            n.checked_mul(10u128.checked_pow((q.pow10 - low).unsigned_abs())?)
        };
        let low = self.pow10.min(other.pow10);
        match (exact(self, low), exact(other, low)) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Too large to line up exactly: whole-unit ceilings differ, or nano resolution decides.
            _ => (self.value_ceil().abs(), self.scaled_ceil(9).map(i128::abs)).cmp(&(
                other.value_ceil().abs(),
                other.scaled_ceil(9).map(i128::abs),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i128 {
        parse_quantity(s)
            .map(|q| q.milli_value_ceil())
            .unwrap_or(-999)
    }
    fn value(s: &str) -> i128 {
        parse_quantity(s).map(|q| q.value_ceil()).unwrap_or(-999)
    }

    #[test]
    fn parses_the_full_grammar() {
        assert_eq!(milli("500m"), 500);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("5."), 5000);
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("+1"), 1000);
        assert_eq!(milli("-1"), -1000);
        assert_eq!(milli("0.1m"), 1);
        assert_eq!(milli("1e-4"), 1);
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("1.5Gi"), 3 * 512 * 1024 * 1024);
        assert_eq!(value("1Ki"), 1024);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("100k"), 100_000);
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("1E3"), 1000);
        assert_eq!(value("1e+3"), 1000);
        assert_eq!(value("2E"), 2_000_000_000_000_000_000);
        assert_eq!(value("0.5"), 1);
        assert_eq!(value("000123.4500"), 124);
        assert_eq!(value("0"), 0);
        assert_eq!(value("-0"), 0);
    }

    #[test]
    fn rejects_non_quantities() {
        for bad in [
            "", ".", "+", "1.2.3", "1 Mi", "1mi", "1KI", "1e", "1e1.5", "abc", "0x10", "1Mib",
            "--1", "1e99999",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            parse_quantity("1Qi"),
            Err(QuantityError::Suffix { .. })
        ));
        assert!(matches!(
            parse_quantity("1e400"),
            Err(QuantityError::OutOfRange(_))
        ));
    }

    #[test]
    fn prints_canonically_as_the_api_server() {
        let c = |s: &str| parse_quantity(s).unwrap().canonical().unwrap();
        assert_eq!(c("10Mi"), "10Mi");
        assert_eq!(c("10240Ki"), "10Mi");
        assert_eq!(c("1536Ki"), "1536Ki");
        assert_eq!(c("0.5Gi"), "512Mi");
        assert_eq!(c("512"), "512");
        assert_eq!(c("1000k"), "1M");
        assert_eq!(c("1500"), "1500");
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("100m"), "100m");
        assert_eq!(c("1e3"), "1e3");
        assert_eq!(c("0"), "0");
        assert_eq!(c("-2k"), "-2k");
    }

    #[test]
    fn compares_exactly() {
        let q = |s| parse_quantity(s).unwrap_or_else(|_| panic!("{s}"));
        assert_eq!(q("1").cmp_value(&q("1000m")), Ordering::Equal);
        assert_eq!(q("1Ki").cmp_value(&q("1024")), Ordering::Equal);
        assert_eq!(q("1k").cmp_value(&q("1Ki")), Ordering::Less);
        assert_eq!(q("0.0001").cmp_value(&q("0.0002")), Ordering::Less);
        assert_eq!(q("-1").cmp_value(&q("-2")), Ordering::Greater);
        assert_eq!(q("2E").cmp_value(&q("1Ei")), Ordering::Greater);
    }

    #[test]
    fn sums_keep_the_first_format() {
        let sum = |a: &str, b: &str| {
            parse_quantity(a)
                .unwrap()
                .checked_add(&parse_quantity(b).unwrap())
                .and_then(|q| q.canonical())
        };
        assert_eq!(sum("500m", "0.5").as_deref(), Some("1"));
        assert_eq!(sum("50Mi", "100Mi").as_deref(), Some("150Mi"));
        assert_eq!(sum("1", "250m").as_deref(), Some("1250m"));
        assert!(parse_quantity("-1")
            .unwrap()
            .checked_add(&parse_quantity("1").unwrap())
            .is_none());
    }
}
