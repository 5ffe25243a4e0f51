//! Values of the command line that more than one argument group reads.

/// `512MiB`, `2GiB`, `1G`, `65536`: a size in bytes (K/M/G and KiB/MiB/GiB are powers of 1024).
pub(crate) fn parse_bytes(value: &str) -> Result<usize, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("`{value}` is not a size like 512MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown unit `{other}` in `{value}`; use KiB, MiB or GiB")),
    };
    n.checked_mul(1usize << shift).ok_or_else(|| format!("`{value}` is too large"))
}
