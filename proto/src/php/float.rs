//! PHP's float-to-text rules (`php_gcvt`): `serialize` uses the shortest round-trip digits with a
//! 17-digit switch to exponent form (`serialize_precision = -1`); string conversion of a float
//! body uses 14 significant digits (`precision = 14`).

/// Appends the text of `x` that `serialize()` writes after `d:`.
pub fn serialize_float(x: f64, out: &mut Vec<u8>) {
    gcvt(x, None, b'E', out);
}

/// Appends `x` as `json_encode` writes it (same digits, lowercase `e`). Callers reject INF/NAN.
pub(crate) fn json_float(x: f64, out: &mut Vec<u8>) {
    gcvt(x, None, b'e', out);
}

/// `(string)$x` under PHP's default `precision = 14`, as a float message body is sent.
pub fn float_to_string(x: f64) -> String {
    let mut out = Vec::new();
    gcvt(x, Some(14), b'E', &mut out);
    String::from_utf8(out).expect("float text is ASCII")
}

/// `precision = None` means the shortest digits that round-trip (dtoa mode 0, 17-digit switch).
fn gcvt(x: f64, precision: Option<usize>, exp_char: u8, out: &mut Vec<u8>) {
    if x.is_nan() {
        out.extend_from_slice(b"NAN");
        return;
    }
    if x.is_infinite() {
        out.extend_from_slice(if x < 0.0 { b"-INF" } else { b"INF" });
        return;
    }
    let (digits, decpt) = decimal_digits(x.abs(), precision);
    let ndigit = precision.unwrap_or(17) as i32;
    if x.is_sign_negative() {
        out.push(b'-');
    }
    let digits = digits.as_bytes();
    if decpt < -3 || decpt > ndigit {
        // Exponent form: one digit, the point, the rest (or "0"), "E", sign, exponent.
        let exp = decpt - 1;
        out.push(digits[0]);
        out.push(b'.');
        if digits.len() > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        out.push(exp_char);
        out.push(if exp < 0 { b'-' } else { b'+' });
        out.extend_from_slice(exp.unsigned_abs().to_string().as_bytes());
    } else if decpt < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', decpt.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else {
        let int_len = decpt as usize;
        for i in 0..int_len {
            out.push(*digits.get(i).unwrap_or(&b'0'));
        }
        if digits.len() > int_len {
            if int_len == 0 {
                out.push(b'0');
            }
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    }
}

/// The significant digits of `x >= 0` without trailing zeros, and `decpt` such that
/// `x = 0.DIGITS × 10^decpt` (dtoa's convention). Zero gives `("0", 1)`.
fn decimal_digits(x: f64, precision: Option<usize>) -> (String, i32) {
    let sci = match precision {
        None => format!("{x:e}"),
        Some(p) => format!("{x:.*e}", p.saturating_sub(1)),
    };
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (digits, 1);
    }
    (digits, exp + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser(x: f64) -> String {
        let mut out = Vec::new();
        serialize_float(x, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn precision_14_string_conversion() {
        assert_eq!(float_to_string(0.1 + 0.2), "0.3");
        assert_eq!(float_to_string(1e15), "1.0E+15");
        assert_eq!(float_to_string(1e14), "1.0E+14");
        assert_eq!(float_to_string(1e13), "10000000000000");
        assert_eq!(float_to_string(-1.5), "-1.5");
        assert_eq!(float_to_string(1.0 / 3.0), "0.33333333333333");
        assert_eq!(float_to_string(0.0), "0");
    }

    #[test]
    fn zero_and_small() {
        assert_eq!(ser(0.0), "0");
        assert_eq!(ser(-0.0), "-0");
        assert_eq!(ser(0.00012), "0.00012");
        assert_eq!(ser(1.5e300), "1.5E+300");
    }
}
