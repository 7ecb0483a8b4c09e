//! Money as an integer.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An amount of US dollars in nano-dollars (1e-9 USD). Money is an integer
/// everywhere inside the gateway; floats appear only when reading prices from
/// configuration and when printing.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NanoUsd(pub i64);

impl NanoUsd {
    /// Zero dollars.
    pub const ZERO: NanoUsd = NanoUsd(0);
    /// Nano-dollars in one dollar.
    pub const PER_USD: i64 = 1_000_000_000;

    /// Converts a dollar amount read from configuration, rounding to the
    /// nearest nano-dollar. Non-finite values become zero.
    pub fn from_usd(usd: f64) -> Self {
        if !usd.is_finite() {
            return Self::ZERO;
        }
        let nanos = (usd * Self::PER_USD as f64).round();
        // Saturate rather than wrap: prices this large are configuration mistakes.
        Self(nanos.clamp(i64::MIN as f64, i64::MAX as f64) as i64)
    }

    /// The amount in dollars, for display and for LiteLLM-compatible JSON.
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / Self::PER_USD as f64
    }

    /// The amount in dollars as the shortest exact decimal: `"0.0000025"`,
    /// `"12"`, `"-1.5"`. Below $4M this is the text `f64`'s `Display` gives
    /// for [`as_usd`](Self::as_usd) (each nine-digit decimal there has its
    /// own `f64`), written without formatting a float or allocating; above,
    /// it stays exact. For response headers, on every keyed request.
    pub fn usd_text(self) -> UsdText {
        let mut text = UsdText {
            bytes: [0; UsdText::CAPACITY],
            len: 0,
        };
        let magnitude = self.0.unsigned_abs();
        let per_usd = Self::PER_USD.unsigned_abs();
        if self.0 < 0 {
            text.push(b'-');
        }
        // i64::MAX is 9,223,372,036 dollars: at most ten digits.
        let mut whole = [0u8; 10];
        let mut start = whole.len();
        let mut dollars = magnitude / per_usd;
        loop {
            start -= 1;
            whole[start] = b'0' + (dollars % 10) as u8;
            dollars /= 10;
            if dollars == 0 || start == 0 {
                break;
            }
        }
        whole[start..].iter().for_each(|&digit| text.push(digit));
        let mut fraction = magnitude % per_usd;
        if fraction != 0 {
            let mut digits = 9;
            while fraction % 10 == 0 {
                fraction /= 10;
                digits -= 1;
            }
            let mut fraction_digits = [b'0'; 9];
            for slot in fraction_digits[..digits].iter_mut().rev() {
                *slot = b'0' + (fraction % 10) as u8;
                fraction /= 10;
            }
            text.push(b'.');
            fraction_digits[..digits]
                .iter()
                .for_each(|&digit| text.push(digit));
        }
        text
    }

    /// Adds without overflowing.
    pub fn saturating_add(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(other.0))
    }
}

impl Add for NanoUsd {
    type Output = NanoUsd;
    fn add(self, rhs: NanoUsd) -> NanoUsd {
        self.saturating_add(rhs)
    }
}

impl AddAssign for NanoUsd {
    fn add_assign(&mut self, rhs: NanoUsd) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub for NanoUsd {
    type Output = NanoUsd;
    fn sub(self, rhs: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Debug for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.9}", self.as_usd())
    }
}

/// [`NanoUsd::usd_text`]'s decimal, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UsdText {
    bytes: [u8; UsdText::CAPACITY],
    len: usize,
}

impl UsdText {
    /// A sign, ten whole digits, a point and nine fraction digits.
    const CAPACITY: usize = 21;

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// The ASCII bytes, for a header value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' are pushed: the check passes.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Display for UsdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UsdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.6}", self.as_usd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_text_is_the_exact_decimal() {
        assert_eq!(NanoUsd(0).usd_text().as_str(), "0");
        assert_eq!(NanoUsd(2_500).usd_text().as_str(), "0.0000025");
        assert_eq!(NanoUsd(1).usd_text().as_str(), "0.000000001");
        assert_eq!(NanoUsd(12_000_000_000).usd_text().as_str(), "12");
        assert_eq!(NanoUsd(-1_500_000_000).usd_text().as_str(), "-1.5");
        assert_eq!(
            NanoUsd(1_000_000_000_000_000).usd_text().as_str(),
            "1000000"
        );
        assert_eq!(
            NanoUsd(i64::MIN).usd_text().as_str(),
            "-9223372036.854775808"
        );
        assert_eq!(
            NanoUsd(i64::MAX).usd_text().as_str(),
            "9223372036.854775807"
        );
    }

    #[test]
    fn usd_text_matches_float_display_below_four_million_dollars() {
        // A fixed pseudo-random walk over magnitudes from nano-dollars to
        // $4M, plus round figures: the header text must not change.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut amounts = vec![0, 1, 9, 10, 999_999_999, 1_000_000_000, 1_000_000_001];
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let scale = 10_i64.pow((state % 16) as u32);
            amounts.push((state >> 20) as i64 % scale);
        }
        for nanos in amounts {
            for amount in [NanoUsd(nanos), NanoUsd(-nanos)] {
                assert_eq!(
                    amount.usd_text().as_str(),
                    amount.as_usd().to_string(),
                    "{}",
                    amount.0
                );
            }
        }
    }

    #[test]
    fn dollars_round_trip_through_nanos() {
        assert_eq!(NanoUsd::from_usd(0.000_002_5), NanoUsd(2_500));
        assert_eq!(NanoUsd::from_usd(1.5).0, 1_500_000_000);
        assert_eq!(NanoUsd::from_usd(f64::NAN), NanoUsd::ZERO);
        assert!((NanoUsd(2_500).as_usd() - 0.000_002_5).abs() < 1e-15);
    }
}
