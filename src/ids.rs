//! Identifiers: random vault, volume and snapshot ids, keyed chunk ids, hex.
//!
//! Ids are newtypes so that a volume id is never passed where a chunk id is
//! expected. Display is lowercase hex. Does not know about keys or media.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parse lowercase or uppercase hex into exactly `N` bytes.
pub fn from_hex<const N: usize>(text: &str) -> Result<[u8; N]> {
    let bad = || Error::corrupt(format!("not a {}-byte hex value: {text:?}", N));
    if text.len() != N * 2 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
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
    }
}
