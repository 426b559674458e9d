//! Identifiers: random vault, volume and snapshot ids, keyed chunk ids, hex.
//!
//! Ids are newtypes so that a volume id is never passed where a chunk id is
//! expected. Display is lowercase hex. Does not know about keys or media.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Lowercase hex of `bytes`. By table, not `format!`: ids are written and read for
/// every file of every snapshot, and the formatter showed in profiles.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Parse lowercase or uppercase hex into exactly `N` bytes.
pub fn from_hex<const N: usize>(text: &str) -> Result<[u8; N]> {
    let bad = || Error::corrupt(format!("not a {}-byte hex value: {text:?}", N));
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    if text.len() != N * 2 {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = (digit(pair[0]).ok_or_else(bad)? << 4) | digit(pair[1]).ok_or_else(bad)?;
    }
    Ok(out)
}

/// Fresh random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS generator failing is not recoverable and would make every key weak.
    getrandom::fill(&mut out).expect("operating system random generator failed");
    out
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Parse from hex.
            pub fn parse(text: &str) -> Result<$name> {
                from_hex::<$len>(text).map($name)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&to_hex(&self.0))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), to_hex(&self.0))
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&to_hex(&self.0))
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$name, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A vault's random identity, fixed at `init`; bound into every blob's AAD.
    VaultId,
    16
);
id_type!(
    /// A volume's random identity, fresh for every write attempt.
    VolumeId,
    16
);
id_type!(
    /// A snapshot's random identity.
    SnapshotId,
    16
);
id_type!(
    /// Keyed BLAKE3 of a chunk's plain bytes: names the chunk without revealing it.
    ChunkId,
    32
);

impl VaultId {
    /// A fresh random vault id.
    pub fn random() -> VaultId {
        VaultId(random_bytes())
    }
}
impl VolumeId {
    /// A fresh random volume id.
    pub fn random() -> VolumeId {
        VolumeId(random_bytes())
    }
}
impl SnapshotId {
    /// A fresh random snapshot id.
    pub fn random() -> SnapshotId {
        SnapshotId(random_bytes())
    }
    /// The 8-character form shown in listings.
    pub fn short(&self) -> String {
        to_hex(&self.0[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_input() {
        let id = ChunkId(random_bytes());
        assert_eq!(ChunkId::parse(&id.to_string()).unwrap(), id);
        assert!(VaultId::parse("zz").is_err());
        assert!(VaultId::parse(&"g".repeat(32)).is_err());
        assert!(VaultId::parse("é".repeat(16).as_str()).is_err());
        assert_eq!(to_hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(from_hex::<2>("aBcD").unwrap(), [0xab, 0xcd]);
        assert!(from_hex::<1>("+f").is_err(), "a sign is not a digit");
    }
}
