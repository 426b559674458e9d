//! The paper key: the master key and vault id in a form made to be printed and typed back.
//!
//! Ten numbered lines of Crockford base32 (no I, L, O or U; those typed by
//! mistake read as 1, 1, 0 and V is not accepted), two groups of four
//! characters each (5 bytes), then a three-character checksum over the line
//! number and its bytes, so a typo or a swapped line names its line. The
//! last two payload bytes check the whole key. Text around the numbered
//! lines is for the reader and ignored on import.

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::ids::VaultId;
use zeroize::Zeroizing;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LINES: usize = 10;
const BYTES_PER_LINE: usize = 5;
const PAYLOAD: usize = LINES * BYTES_PER_LINE;
const HEADER: &str = "tapevault paper key v1";

fn symbol_value(c: u8) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    ALPHABET.iter().position(|a| *a == c).map(|v| v as u8)
}

/// Five bytes as eight base32 symbols.
fn encode_line(bytes: &[u8; BYTES_PER_LINE]) -> [u8; 8] {
    let mut bits = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = [0u8; 8];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    out
}

fn line_check(number: usize, bytes: &[u8; BYTES_PER_LINE]) -> [u8; 3] {
    let mut hasher = blake3::Hasher::new_derive_key("tapevault v1 paper line");
    hasher.update(&[number as u8]);
    hasher.update(bytes);
    let hash = hasher.finalize();
    let value = u32::from_le_bytes(hash.as_bytes()[..4].try_into().expect("4 bytes")) & 0x7fff;
    [10, 5, 0].map(|shift| ALPHABET[((value >> shift) & 31) as usize])
}

fn key_check(body: &[u8]) -> [u8; 2] {
    blake3::derive_key("tapevault v1 paper key", body)[..2]
        .try_into()
        .expect("2 bytes")
}

/// The printable paper key for `key` of `vault`.
pub fn export(vault: VaultId, key: &MasterKey) -> Zeroizing<String> {
    let mut payload = Zeroizing::new([0u8; PAYLOAD]);
    payload[..16].copy_from_slice(&vault.0);
    payload[16..48].copy_from_slice(key.expose());
    let check = key_check(&payload[..48]);
    payload[48..].copy_from_slice(&check);
    let mut text = Zeroizing::new(format!(
        "{HEADER}\nvault        {vault}\nfingerprint  {}\n\
         Type the ten numbered lines back exactly (tapevault key import --paper FILE).\n\
         The last group of each line is its checksum. Keep this sheet as safe as the data.\n\n",
        key.fingerprint()
    ));
    for (index, chunk) in payload.chunks_exact(BYTES_PER_LINE).enumerate() {
        let bytes: &[u8; BYTES_PER_LINE] = chunk.try_into().expect("5 bytes");
        let symbols = encode_line(bytes);
        let check = line_check(index + 1, bytes);
        let as_str = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        text.push_str(&format!(
            "{:02}  {} {}  {}\n",
            index + 1,
            as_str(&symbols[..4]),
            as_str(&symbols[4..]),
            as_str(&check)
        ));
    }
    text
}

/// Decode one line's eleven symbols; `Err` says what is wrong with it.
fn decode_line(number: usize, symbols: &[u8]) -> std::result::Result<[u8; 5], String> {
    if symbols.len() != 11 {
        return Err(format!(
            "has {} characters where 11 are expected (8 key characters and 3 checksum)",
            symbols.len()
        ));
    }
    let mut values = [0u8; 11];
    for (at, c) in symbols.iter().enumerate() {
        values[at] = symbol_value(*c).ok_or_else(|| {
            format!(
                "character {} ({:?}) is not a paper-key character",
                at + 1,
                *c as char
            )
        })?;
    }
    let bytes =
        values_to_bytes(&values[..8]).ok_or("does not decode (first character too large)")?;
    let expected = line_check(number, &bytes).map(|s| symbol_value(s).expect("own alphabet"));
    if expected[..] == values[8..] {
        return Ok(bytes);
    }
    // Name the character when exactly one single-character change fixes the line.
    let mut fixes = Vec::new();
    for at in 0..11 {
        for value in 0..32u8 {
            if value == values[at] {
                continue;
            }
            let mut trial = values;
            trial[at] = value;
            if let Some(b) = values_to_bytes(&trial[..8]) {
                let check = line_check(number, &b).map(|s| symbol_value(s).expect("own alphabet"));
                if check[..] == trial[8..] {
                    fixes.push((at, value));
                }
            }
        }
    }
    Err(match fixes.as_slice() {
        [(at, value)] => format!(
            "does not match its checksum: character {} is probably mistyped (should it be {}?)",
            at + 1,
            ALPHABET[*value as usize] as char
        ),
        _ => "does not match its checksum (a typo in this line)".into(),
    })
}

fn values_to_bytes(values: &[u8]) -> Option<[u8; 5]> {
    let bits = values
        .iter()
        .fold(0u64, |acc, v| (acc << 5) | u64::from(*v));
    if bits >> 40 != 0 {
        return None;
    }
    let mut out = [0u8; 5];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = (bits >> (32 - 8 * i)) as u8;
    }
    Some(out)
}

/// Read a paper key back: the vault id and the master key.
pub fn import(text: &str) -> Result<(VaultId, MasterKey)> {
    let mut lines: Vec<Option<[u8; 5]>> = vec![None; LINES];
    let mut problems = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(number) = words
            .next()
            .and_then(|w| w.trim_end_matches(':').parse::<usize>().ok())
        else {
            continue;
        };
        if !(1..=LINES).contains(&number) {
            problems.push(format!(
                "line {number:02}: a paper key has lines 01 to 10 only"
            ));
            continue;
        }
        let symbols: Vec<u8> = words
            .flat_map(|w| w.bytes())
            .filter(|b| *b != b'-')
            .collect();
        match decode_line(number, &symbols) {
            Ok(bytes) if lines[number - 1].is_none() => lines[number - 1] = Some(bytes),
            Ok(_) => problems.push(format!("line {number:02}: appears twice")),
            Err(why) => problems.push(format!("line {number:02}: {why}")),
        }
    }
    for (index, line) in lines.iter().enumerate() {
        if line.is_none()
            && !problems
                .iter()
                .any(|p| p.starts_with(&format!("line {:02}", index + 1)))
        {
            problems.push(format!("line {:02}: missing", index + 1));
        }
    }
    if !problems.is_empty() {
        return Err(Error::usage(format!(
            "paper key not accepted: {}",
            problems.join("; ")
        )));
    }
    let mut payload = Zeroizing::new([0u8; PAYLOAD]);
    for (index, line) in lines.iter().enumerate() {
        let bytes = line.expect("all lines checked above");
        payload[index * BYTES_PER_LINE..][..BYTES_PER_LINE].copy_from_slice(&bytes);
    }
    if key_check(&payload[..48])[..] != payload[48..] {
        return Err(Error::usage(
            "paper key not accepted: every line checks, but the whole key does not (lines from two different sheets?)",
        ));
    }
    let vault = VaultId(payload[..16].try_into().expect("16 bytes"));
    let mut master = Zeroizing::new([0u8; 32]);
    master.copy_from_slice(&payload[16..48]);
    Ok((vault, MasterKey::from_bytes(*master)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t56_round_trip_and_a_typo_names_its_line_and_character() {
        // Fixed material, so the confusable-letter check below always has letters to relax.
        let key = MasterKey::from_bytes(*blake3::hash(b"paper test key").as_bytes());
        let vault = VaultId(
            blake3::hash(b"paper test vault").as_bytes()[..16]
                .try_into()
                .unwrap(),
        );
        let text = export(vault, &key);
        let (back_vault, back_key) = import(&text).unwrap();
        assert_eq!(back_vault, vault);
        assert_eq!(back_key.expose(), key.expose());
        // Lowercase and confusable letters are accepted as typed.
        let relaxed: String = text
            .lines()
            .map(|line| match line.split_once("  ") {
                Some((number, rest)) if number.len() == 2 => {
                    format!(
                        "{number}  {}\n",
                        rest.to_lowercase().replace('0', "o").replace('1', "l")
                    )
                }
                _ => format!("{line}\n"),
            })
            .collect();
        assert!(relaxed.contains('o') || relaxed.contains('l'));
        assert_eq!(import(&relaxed).unwrap().1.expose(), key.expose());

        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let at = lines.iter().position(|l| l.starts_with("04")).unwrap();
        let mut chars: Vec<char> = lines[at].chars().collect();
        chars[5] = if chars[5] == 'X' { 'Y' } else { 'X' };
        lines[at] = chars.into_iter().collect();
        let err = import(&lines.join("\n")).err().unwrap();
        assert!(err.to_string().contains("line 04"), "{err}");
        assert!(!err.to_string().contains("line 05"), "{err}");

        let swapped = text
            .replace("\n03 ", "\nXX ")
            .replace("\n02 ", "\n03 ")
            .replace("\nXX ", "\n02 ");
        let err = import(&swapped).err().unwrap();
        assert!(
            err.to_string().contains("line 02") && err.to_string().contains("line 03"),
            "{err}"
        );
    }
}
