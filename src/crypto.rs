//! Keys and authenticated encryption (stage 6). No I/O, no catalog.
//!
//! A random 256-bit master key is wrapped by a key derived from the
//! passphrase with argon2id. Every other key is derived from the master key
//! with BLAKE3 `derive_key` under a versioned context: the chunk-id key, the
//! chunker seed, one key per volume (from the volume's random id, fresh for
//! every write attempt) and one sub-key per pack within a volume. Blobs are
//! sealed with AES-256-GCM under the pack key with counter nonces owned by a
//! single [`PackSealer`]; the associated data binds format version, vault id,
//! blob kind and chunk id, so a blob cannot be swapped, replayed from another
//! vault or read as another kind. Every key type zeroizes on drop.

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{random_bytes, to_hex, ChunkId, VaultId, VolumeId};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

mod kdf_memory;

/// AES-GCM authentication tag length, added to every sealed blob.
pub const TAG_BYTES: usize = 16;
/// The nonce counter value reserved for a pack's encrypted header.
const HEADER_NONCE: u64 = u64::MAX;
/// Blobs per pack key; far above any real pack, far below any nonce limit.
pub const MAX_BLOBS_PER_PACK: u64 = 1 << 32;

/// argon2id defaults: RFC 9106's second recommended option, strengthened.
pub const DEFAULT_KDF_MEMORY_KIB: u32 = 256 * 1024;
/// argon2id default passes.
pub const DEFAULT_KDF_ITERATIONS: u32 = 3;
/// argon2id default lanes.
pub const DEFAULT_KDF_PARALLELISM: u32 = 4;
/// `init` refuses less memory than this: it would make a lost cartridge cheap to attack.
pub const MIN_KDF_MEMORY_KIB: u32 = 8 * 1024;
/// A label asking for more than this is hostile or damaged; refused before allocating.
pub const MAX_KDF_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Upper bound on passes accepted from a label.
pub const MAX_KDF_ITERATIONS: u32 = 64;
/// Upper bound on lanes accepted from a label.
pub const MAX_KDF_PARALLELISM: u32 = 64;

/// What a blob holds; bound into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// A chunk of a snapshot's encoded node list.
    Tree,
}

impl BlobKind {
    /// The byte written into associated data and pack headers.
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 1,
            BlobKind::Tree => 2,
        }
    }
    /// Inverse of [`BlobKind::code`].
    pub fn from_code(code: u8) -> Result<BlobKind> {
        match code {
            1 => Ok(BlobKind::Data),
            2 => Ok(BlobKind::Tree),
            other => Err(Error::corrupt(format!("unknown blob kind {other}"))),
        }
    }
}

/// The vault's master key. Never written anywhere unwrapped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

/// Key for one volume; derived from the master key and the volume id.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct VolumeKey([u8; 32]);

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

impl MasterKey {
    /// A fresh random master key.
    pub fn random() -> MasterKey {
        MasterKey(random_bytes())
    }

    /// The key for chunk ids (keyed BLAKE3), so ids do not reveal known content.
    pub fn chunk_id_key(&self) -> ChunkIdKey {
        ChunkIdKey(derive("tapevault v1 chunk id", &[&self.0]))
    }

    /// The seed of the content-defined chunker, so boundaries do not fingerprint content.
    pub fn chunker_seed(&self) -> u64 {
        let bytes = derive("tapevault v1 chunker", &[&self.0]);
        u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }

    /// The key of one volume.
    pub fn volume_key(&self, volume: &VolumeId) -> VolumeKey {
        VolumeKey(derive("tapevault v1 volume key", &[&self.0, &volume.0]))
    }

    /// Encrypt a vault record (forget, prune) of `kind` with id `id` (one record per id,
    /// so a fixed nonce is unique).
    pub fn seal_record(&self, vault: VaultId, kind: &str, id: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        let key = derive("tapevault v1 record key", &[&self.0, id]);
        encrypt(
            &cipher(&key),
            nonce_bytes(0),
            &record_aad(vault, kind, id),
            plain,
        )
    }

    /// Decrypt a vault record; fails if it was altered, moved or renamed to another kind.
    pub fn open_record(
        &self,
        vault: VaultId,
        kind: &str,
        id: &[u8; 16],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let key = derive("tapevault v1 record key", &[&self.0, id]);
        decrypt(
            &cipher(&key),
            nonce_bytes(0),
            &record_aad(vault, kind, id),
            sealed,
        )
        .ok_or_else(|| Error::corrupt(format!("{kind} record failed authentication")))
    }

    /// A public fingerprint of this key, pinned in the catalog.
    pub fn fingerprint(&self) -> String {
        to_hex(&derive("tapevault v1 fingerprint", &[&self.0])[..16])
    }

    /// The raw bytes, for paper export only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuild from raw bytes (paper import).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }
}

/// The keyed-BLAKE3 key that names chunks.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChunkIdKey([u8; 32]);

impl ChunkIdKey {
    /// The id of a chunk's plain bytes.
    pub fn id(&self, plain: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.0, plain).as_bytes())
    }
}

impl VolumeKey {
    /// The sub-key of pack number `pack` in this volume (one nonce space per pack).
    pub fn pack_sealer(&self, vault: VaultId, pack: u32) -> PackSealer {
        let key = derive("tapevault v1 pack key", &[&self.0, &pack.to_le_bytes()]);
        PackSealer {
            cipher: cipher(&key),
            vault,
            pack,
            next_nonce: 0,
        }
    }

    /// Encrypt the volume index (one per volume, so a fixed nonce is unique).
    pub fn seal_index(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let key = derive("tapevault v1 index key", &[&self.0]);
        encrypt(&cipher(&key), nonce_bytes(0), aad, plain)
    }

    /// Decrypt the volume index.
    pub fn open_index(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let key = derive("tapevault v1 index key", &[&self.0]);
        decrypt(&cipher(&key), nonce_bytes(0), aad, sealed)
            .ok_or_else(|| Error::corrupt("volume index failed authentication"))
    }
}

/// AES-256-GCM under `key`. AWS-LC's, not RustCrypto's: the same bytes, ten times the
/// speed on this machine (11.5 against 1.1 GB/s), and a backup seals and opens every
/// byte once each. Nonces are this module's to keep unique (hence "less safe").
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes a 32-byte key"))
}

fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// `plain` encrypted, then its tag.
fn encrypt(cipher: &LessSafeKey, nonce: [u8; 12], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(plain.len() + TAG_BYTES);
    sealed.extend_from_slice(plain);
    // AES-GCM encryption fails only for inputs beyond 64 GiB, which packs never reach.
    cipher
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut sealed,
        )
        .expect("AES-GCM input within limits");
    sealed
}

/// The plain bytes of `sealed` (encrypted bytes, then tag), if it is authentic.
fn decrypt(cipher: &LessSafeKey, nonce: [u8; 12], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let mut plain = Vec::new();
    decrypt_into(cipher, nonce, aad, sealed, &mut plain).then_some(plain)
}

/// [`decrypt`] into `out`, replacing what it held and reusing its allocation; false
/// (and `out` empty) when `sealed` is not authentic.
fn decrypt_into(
    cipher: &LessSafeKey,
    nonce: [u8; 12],
    aad: &[u8],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    // Exact: a reused buffer grown by doubling would idle at twice the largest blob.
    out.reserve_exact(sealed.len());
    out.extend_from_slice(sealed);
    let opened = cipher
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), out)
        .map(|plain| plain.len());
    match opened {
        Ok(len) => out.truncate(len),
        Err(_) => out.clear(),
    }
    opened.is_ok()
}

/// Associated data of a blob: version, vault, kind and chunk id (Horton principle).
fn blob_aad(vault: VaultId, kind: BlobKind, id: &ChunkId) -> [u8; 53] {
    let mut aad = [0u8; 53];
    aad[..4].copy_from_slice(b"TVB1");
    aad[4..20].copy_from_slice(&vault.0);
    aad[20] = kind.code();
    aad[21..53].copy_from_slice(&id.0);
    aad
}

fn record_aad(vault: VaultId, kind: &str, id: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"TVN1".to_vec();
    aad.extend_from_slice(&vault.0);
    aad.extend_from_slice(id);
    aad.extend_from_slice(kind.as_bytes());
    aad
}

fn header_aad(vault: VaultId, pack: u32) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..4].copy_from_slice(b"TVP1");
    aad[4..20].copy_from_slice(&vault.0);
    aad[20..24].copy_from_slice(&pack.to_le_bytes());
    aad
}

/// The only encryptor of one pack: owns its nonce counter, so a nonce is never reused.
/// Deliberately neither `Clone` nor `Copy`.
pub struct PackSealer {
    cipher: LessSafeKey,
    vault: VaultId,
    pack: u32,
    next_nonce: u64,
}

impl PackSealer {
    /// Seal the next blob onto the end of `out`, encrypted where it lands (no copy of
    /// it is made); its position in the pack is its nonce.
    pub fn seal_into(
        &mut self,
        kind: BlobKind,
        id: &ChunkId,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if self.next_nonce >= MAX_BLOBS_PER_PACK {
            return Err(Error::new(ErrorKind::Io, "pack blob limit reached"));
        }
        let start = out.len();
        out.extend_from_slice(plain);
        // AES-GCM encryption fails only for inputs beyond 64 GiB, which blobs never reach.
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes(self.next_nonce)),
                Aad::from(blob_aad(self.vault, kind, id)),
                &mut out[start..],
            )
            .expect("AES-GCM input within limits");
        out.extend_from_slice(tag.as_ref());
        self.next_nonce += 1;
        Ok(())
    }

    /// Open blob number `position` of this pack into `out`, replacing what it held and
    /// reusing its allocation; false (and `out` empty) when it fails authentication.
    pub fn open_into(
        &self,
        position: u64,
        kind: BlobKind,
        id: &ChunkId,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        decrypt_into(
            &self.cipher,
            nonce_bytes(position),
            &blob_aad(self.vault, kind, id),
            sealed,
            out,
        )
    }

    /// Open blob number `position` of this pack (reading side).
    pub fn open(
        &self,
        position: u64,
        kind: BlobKind,
        id: &ChunkId,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(position, kind, id, sealed, &mut out)
            .then_some(out)
    }

    /// Seal the pack header; consumes the sealer so no blob can follow it.
    pub fn seal_header(self, plain: &[u8]) -> Vec<u8> {
        encrypt(
            &self.cipher,
            nonce_bytes(HEADER_NONCE),
            &header_aad(self.vault, self.pack),
            plain,
        )
    }

    /// Open a pack header (reading side).
    pub fn open_header(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        decrypt(
            &self.cipher,
            nonce_bytes(HEADER_NONCE),
            &header_aad(self.vault, self.pack),
            sealed,
        )
    }

    /// How many blobs have been sealed so far.
    pub fn sealed_count(&self) -> u64 {
        self.next_nonce
    }
}

/// argon2id parameters and salt, recorded in every label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always "argon2id" in format version 1.
    pub algorithm: String,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Random salt, hex.
    pub salt: String,
}

impl KdfParams {
    /// Fresh parameters for `init`; refuses values that would weaken every cartridge.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<KdfParams> {
        if memory_kib < MIN_KDF_MEMORY_KIB {
            return Err(Error::usage(format!(
                "argon2 memory {memory_kib} KiB is too weak: at least {MIN_KDF_MEMORY_KIB} KiB"
            )));
        }
        let params = KdfParams {
            algorithm: "argon2id".into(),
            memory_kib,
            iterations,
            parallelism,
            salt: to_hex(&random_bytes::<16>()),
        };
        params.check_bounds()?;
        Ok(params)
    }

    /// Refuse absurd or hostile parameters before anything is allocated.
    pub fn check_bounds(&self) -> Result<()> {
        if self.algorithm != "argon2id" {
            return Err(Error::corrupt(format!(
                "unknown key derivation {:?}",
                self.algorithm
            )));
        }
        let ok = (1..=MAX_KDF_MEMORY_KIB).contains(&self.memory_kib)
            && (1..=MAX_KDF_ITERATIONS).contains(&self.iterations)
            && (1..=MAX_KDF_PARALLELISM).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism;
        if !ok {
            return Err(Error::corrupt(format!(
                "refusing key derivation parameters m={} KiB t={} p={}: outside sane bounds \
                 (m <= {MAX_KDF_MEMORY_KIB} KiB, t <= {MAX_KDF_ITERATIONS}, p <= {MAX_KDF_PARALLELISM})",
                self.memory_kib, self.iterations, self.parallelism
            )));
        }
        Ok(())
    }

    /// True when these parameters are below what `init` would accept.
    pub fn is_weak(&self) -> bool {
        self.memory_kib < MIN_KDF_MEMORY_KIB
    }

    fn derive(&self, passphrase: &[u8]) -> Result<WrappingKey> {
        self.check_bounds()?;
        let salt = crate::ids::from_hex::<16>(&self.salt)?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::corrupt(format!("key derivation parameters: {e}")))?;
        let blocks = params.block_count();
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = WrappingKey([0u8; 32]);
        match kdf_memory::KdfMemory::new(blocks) {
            Some(memory) => {
                argon.hash_password_into_with_memory(passphrase, &salt, &mut out.0, memory)
            }
            None => argon.hash_password_into(passphrase, &salt, &mut out.0),
        }
        .map_err(|e| Error::new(ErrorKind::Io, format!("key derivation failed: {e}")))?;
        Ok(out)
    }
}

#[derive(Zeroize, ZeroizeOnDrop)]
struct WrappingKey([u8; 32]);

impl WrappingKey {
    fn check_value(&self) -> String {
        to_hex(&derive("tapevault v1 key check", &[&self.0])[..16])
    }
}

/// The master key wrapped by the passphrase, as stored in the catalog and every label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WrappedKey {
    /// How the wrapping key is derived from the passphrase.
    pub kdf: KdfParams,
    /// Tells a wrong passphrase (mismatch) from a damaged wrapped key (match, tag fails).
    pub key_check: String,
    /// Random nonce of the wrapping encryption, hex.
    pub nonce: String,
    /// AES-256-GCM of the master key, hex.
    pub ciphertext: String,
}

fn wrap_aad(vault: VaultId) -> Vec<u8> {
    let mut aad = b"tapevault wrapped key v1".to_vec();
    aad.extend_from_slice(&vault.0);
    aad
}

impl WrappedKey {
    /// Wrap `master` for `vault` under `passphrase`.
    pub fn wrap(
        master: &MasterKey,
        vault: VaultId,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<WrappedKey> {
        let wrapping = kdf.derive(passphrase)?;
        let nonce: [u8; 12] = random_bytes();
        let sealed = encrypt(&cipher(&wrapping.0), nonce, &wrap_aad(vault), &master.0);
        Ok(WrappedKey {
            kdf,
            key_check: wrapping.check_value(),
            nonce: to_hex(&nonce),
            ciphertext: to_hex(&sealed),
        })
    }

    /// Unwrap with `passphrase`: `WrongKey` for a wrong passphrase, `Corrupt` for damage.
    pub fn unwrap(&self, vault: VaultId, passphrase: &[u8]) -> Result<MasterKey> {
        let wrapping = self.kdf.derive(passphrase)?;
        if wrapping.check_value() != self.key_check {
            return Err(Error::new(
                ErrorKind::WrongKey,
                "wrong passphrase for this vault (check --passphrase-file or \
                 TAPEVAULT_PASSPHRASE; if it is lost, `tapevault key import --paper` with the paper key)",
            ));
        }
        let nonce = crate::ids::from_hex::<12>(&self.nonce)?;
        let sealed = crate::ids::from_hex::<48>(&self.ciphertext)?;
        let mut plain = decrypt(&cipher(&wrapping.0), nonce, &wrap_aad(vault), &sealed)
            .ok_or_else(|| {
                Error::corrupt("the passphrase is right but the wrapped key is damaged")
            })?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&plain);
        plain.zeroize();
        Ok(MasterKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_kdf() -> KdfParams {
        KdfParams::new(MIN_KDF_MEMORY_KIB, 1, 1).unwrap()
    }

    #[test]
    fn huge_page_memory_derives_what_argon2_derives_on_its_own() {
        // Four lanes over 8 MiB and four blocks: lanes that end off a huge-page edge.
        let kdf = KdfParams::new(MIN_KDF_MEMORY_KIB + 4, 2, 4).unwrap();
        let salt = crate::ids::from_hex::<16>(&kdf.salt).unwrap();
        let params = argon2::Params::new(kdf.memory_kib, 2, 4, Some(32)).unwrap();
        let mut alone = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(b"passphrase", &salt, &mut alone)
            .unwrap();
        assert_eq!(kdf.derive(b"passphrase").unwrap().0, alone);
        assert_ne!(kdf.derive(b"passphrasE").unwrap().0, alone);
    }

    #[test]
    fn wrap_unwrap_and_wrong_passphrase_is_wrong_key() {
        let vault = VaultId::random();
        let master = MasterKey::random();
        let wrapped = WrappedKey::wrap(&master, vault, b"right", fast_kdf()).unwrap();
        let back = wrapped.unwrap(vault, b"right").unwrap();
        assert_eq!(back.expose(), master.expose());
        let err = wrapped.unwrap(vault, b"wrong").err().unwrap();
        assert_eq!(err.kind(), ErrorKind::WrongKey);
        let mut damaged = wrapped.clone();
        damaged.ciphertext.replace_range(
            0..2,
            if &damaged.ciphertext[..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert_eq!(
            damaged.unwrap(vault, b"right").err().unwrap().kind(),
            ErrorKind::Corrupt
        );
    }

    #[test]
    fn t46_hostile_kdf_parameters_refused_before_allocation() {
        let mut params = fast_kdf();
        for (m, t, p) in [
            (u32::MAX, 1, 1),
            (MIN_KDF_MEMORY_KIB, u32::MAX, 1),
            (1 << 20, 1, 1 << 24),
        ] {
            params.memory_kib = m;
            params.iterations = t;
            params.parallelism = p;
            assert_eq!(
                params.check_bounds().unwrap_err().kind(),
                ErrorKind::Corrupt
            );
        }
        assert_eq!(
            KdfParams::new(8, 1, 1).unwrap_err().kind(),
            ErrorKind::Usage
        );
        params.memory_kib = 8;
        params.iterations = 1;
        params.parallelism = 1;
        assert!(params.check_bounds().is_ok() && params.is_weak());
    }

    /// One data blob sealed on its own.
    fn seal(sealer: &mut PackSealer, id: &ChunkId, plain: &[u8]) -> Result<Vec<u8>> {
        let mut sealed = Vec::new();
        sealer.seal_into(BlobKind::Data, id, plain, &mut sealed)?;
        Ok(sealed)
    }

    #[test]
    fn t52_blob_swap_kind_confusion_and_cross_vault_replay_fail() {
        let master = MasterKey::random();
        let vault = VaultId::random();
        let volume_key = master.volume_key(&VolumeId::random());
        let ids = master.chunk_id_key();
        let (a, b) = (ids.id(b"alpha"), ids.id(b"beta"));
        let mut sealer = volume_key.pack_sealer(vault, 0);
        let sealed_a = seal(&mut sealer, &a, b"alpha").unwrap();
        let reader = volume_key.pack_sealer(vault, 0);
        assert_eq!(
            reader.open(0, BlobKind::Data, &a, &sealed_a).unwrap(),
            b"alpha"
        );
        assert!(
            reader.open(0, BlobKind::Data, &b, &sealed_a).is_none(),
            "swap"
        );
        assert!(
            reader.open(0, BlobKind::Tree, &a, &sealed_a).is_none(),
            "kind"
        );
        assert!(
            reader.open(1, BlobKind::Data, &a, &sealed_a).is_none(),
            "position"
        );
        let other_vault = volume_key.pack_sealer(VaultId::random(), 0);
        assert!(
            other_vault.open(0, BlobKind::Data, &a, &sealed_a).is_none(),
            "replay"
        );
        let other_pack = volume_key.pack_sealer(vault, 1);
        assert!(
            other_pack.open(0, BlobKind::Data, &a, &sealed_a).is_none(),
            "pack"
        );
    }

    #[test]
    fn t31_nonces_never_repeat_within_a_pack_and_keys_differ_across_volumes() {
        let master = MasterKey::random();
        let vault = VaultId::random();
        let id = master.chunk_id_key().id(b"same");
        let mut sealer = master.volume_key(&VolumeId::random()).pack_sealer(vault, 0);
        let first = seal(&mut sealer, &id, b"same").unwrap();
        let second = seal(&mut sealer, &id, b"same").unwrap();
        assert_ne!(
            first, second,
            "same plaintext under a fresh nonce must differ"
        );
        assert_eq!(sealer.sealed_count(), 2);
        let mut other = master.volume_key(&VolumeId::random()).pack_sealer(vault, 0);
        assert_ne!(seal(&mut other, &id, b"same").unwrap(), first);
        sealer.next_nonce = MAX_BLOBS_PER_PACK;
        assert!(
            seal(&mut sealer, &id, b"x").is_err(),
            "counter must never wrap"
        );
    }
}
