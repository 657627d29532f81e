//! The vault: each tenant's keys, and personal fields sealed at rest.
//!
//! Key hierarchy (see `docs/data-protection.md`):
//! - a **master key** per name in `[keys.master]` (32 random bytes, base64, from an
//!   environment variable or a file) wraps
//! - each tenant's **data keys** (versions 1, 2, …; AES-256-GCM) that seal values, and its
//!   **index key** (HMAC-SHA-256) that makes blind indexes for exact look-ups.
//!
//! Tenant keys live in `tenant_keys`, wrapped: `base64(nonce ‖ AES-256-GCM(master, key))`
//! with the associated data `shoal-key|<tenant>|<purpose>|<version>`, so a wrapped key cannot
//! be moved to another tenant or version.
//!
//! Formats, readable by any AES-GCM / HMAC implementation (the tests check them with
//! Python's `cryptography`):
//! - a sealed value is `s1:<version>:<base64url, no padding, of nonce(12) ‖ ciphertext ‖
//!   tag(16)>`, associated data `shoal|<tenant>|<field>`;
//! - a blind index is the lowercase hex of the first 16 bytes of
//!   `HMAC-SHA-256(index key, <kind> ‖ 0x00 ‖ <normalised value>)`.
//!
//! Every host holds the keys of every tenant in memory, unwrapped at start; a data key
//! version created by another host is loaded by [`Vault::refresh`] before it is used
//! (see [`Vault::add_data_version`]).

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{Arc, RwLock},
};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL},
};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use sqlx::Row as _;

use crate::config::{KeysConfig, MasterKeyConfig};
use sqlx::AnyPool;

/// Bytes of every key (master, data, index).
pub const KEY_LEN: usize = 32;

/// What can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A master key that cannot be read.
    #[error("master key `{name}`: {message}")]
    MasterKey { name: String, message: String },
    /// A tenant key wrapped by a master key that is not configured, or that does not open.
    #[error(
        "tenant {tenant}: its {purpose} key v{version} is wrapped by master key `{master}`, {message}"
    )]
    Unwrap {
        tenant: String,
        purpose: String,
        version: i64,
        master: String,
        message: String,
    },
    /// A tenant this host holds no keys for.
    #[error("no keys for tenant {0}: it is not configured on this host")]
    NoTenant(String),
    /// A sealed value that does not open (another tenant's, tampered with, or under an
    /// unknown key version).
    #[error("a sealed {field} of tenant {tenant} does not open: {message}")]
    Unseal {
        tenant: String,
        field: String,
        message: String,
    },
    /// The key table could not be read or written.
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl From<VaultError> for crate::error::Error {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Storage(e) => crate::error::Error::Storage(e),
            e => crate::error::Error::Internal(e.to_string()),
        }
    }
}

/// One tenant's unwrapped keys.
struct TenantKeys {
    data: BTreeMap<u32, LessSafeKey>,
    index: hmac::Key,
}

/// The keys of every tenant this host serves, and the attributes each seals; cheap to
/// clone (shared).
#[derive(Clone, Default)]
pub struct Vault {
    tenants: Arc<RwLock<HashMap<String, TenantKeys>>>,
    sealed_attributes: Arc<RwLock<HashMap<String, Arc<[String]>>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants = self.tenants.read().map(|t| t.len()).unwrap_or(0);
        f.debug_struct("Vault").field("tenants", &tenants).finish()
    }
}

/// What `shoal keys rotate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewrapped {
    /// Tenant keys wrapped again under the current master key.
    pub rewrapped: usize,
    /// Tenant keys that already were.
    pub current: usize,
}

impl Vault {
    /// Reads the master keys, creates the keys of tenants that have none (several hosts
    /// starting at once agree: the first insert wins and every host reads it back) and holds
    /// every tenant's keys unwrapped.
    pub async fn open(
        &self,
        pool: &AnyPool,
        keys: &KeysConfig,
        tenants: &[String],
    ) -> Result<(), VaultError> {
        let masters = read_masters(keys)?;
        let current = masters
            .get(&keys.current)
            .ok_or_else(|| VaultError::MasterKey {
                name: keys.current.clone(),
                message: "is `keys.current` but not configured".into(),
            })?;
        let now = now_micros();
        for tenant in tenants {
            for purpose in ["data", "index"] {
                let fresh = random_key();
                sqlx::query(
                    "INSERT INTO tenant_keys (tenant_id, purpose, version, master_id, wrapped, created_at) \
                     SELECT $1, $2, 1, $3, $4, $5 WHERE NOT EXISTS \
                     (SELECT 1 FROM tenant_keys WHERE tenant_id = $1 AND purpose = $2) \
                     ON CONFLICT (tenant_id, purpose, version) DO NOTHING",
                )
                .bind(tenant)
                .bind(purpose)
                .bind(&keys.current)
                .bind(wrap(current, tenant, purpose, 1, &fresh))
                .bind(now)
                .execute(pool)
                .await?;
            }
        }
        self.load(pool, &masters).await
    }

    /// Reads every tenant's keys again (a data key version another host added).
    pub async fn refresh(&self, pool: &AnyPool, keys: &KeysConfig) -> Result<(), VaultError> {
        self.load(pool, &read_masters(keys)?).await
    }

    async fn load(
        &self,
        pool: &AnyPool,
        masters: &HashMap<String, LessSafeKey>,
    ) -> Result<(), VaultError> {
        let mut data: HashMap<String, BTreeMap<u32, LessSafeKey>> = HashMap::new();
        let mut index: HashMap<String, hmac::Key> = HashMap::new();
        for row in Stored::all(pool).await? {
            let raw = row.open(masters)?;
            let Stored {
                tenant,
                purpose,
                version,
                ..
            } = row;
            match purpose.as_str() {
                "data" => {
                    // versions are counted up from 1 by `add_data_version`
                    let v = u32::try_from(version).unwrap_or(u32::MAX);
                    data.entry(tenant).or_default().insert(v, aead_key(&raw));
                }
                _ => {
                    index.insert(tenant, hmac::Key::new(hmac::HMAC_SHA256, &raw));
                }
            }
        }
        let mut held = HashMap::new();
        for (tenant, data) in data {
            if let Some(index) = index.remove(&tenant) {
                held.insert(tenant, TenantKeys { data, index });
            }
        }
        *self.tenants.write().unwrap_or_else(|p| p.into_inner()) = held;
        Ok(())
    }

    /// Seals `plain` as `field` of `tenant` under the tenant's newest data key.
    pub fn seal(&self, tenant: &str, field: &str, plain: &str) -> Result<String, VaultError> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let keys = tenants
            .get(tenant)
            .ok_or_else(|| VaultError::NoTenant(tenant.into()))?;
        let (version, key) = keys
            .data
            .last_key_value()
            .ok_or_else(|| VaultError::NoTenant(tenant.into()))?;
        Ok(seal_with(key, *version, tenant, field, plain.as_bytes()))
    }

    /// Opens a value sealed by [`Vault::seal`].
    pub fn unseal(&self, tenant: &str, field: &str, sealed: &str) -> Result<String, VaultError> {
        let fail = |message: &str| VaultError::Unseal {
            tenant: tenant.into(),
            field: field.into(),
            message: message.into(),
        };
        let (version, body) = parse_sealed(sealed).ok_or_else(|| fail("not a sealed value"))?;
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let keys = tenants
            .get(tenant)
            .ok_or_else(|| VaultError::NoTenant(tenant.into()))?;
        let key = keys
            .data
            .get(&version)
            .ok_or_else(|| fail(&format!("data key v{version} is unknown here")))?;
        let mut bytes = B64URL.decode(body).map_err(|_| fail("not base64url"))?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(fail("too short"));
        }
        let rest = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| fail("bad nonce"))?;
        let mut rest = rest;
        let plain = key
            .open_in_place(nonce, Aad::from(aad(tenant, field).as_bytes()), &mut rest)
            .map_err(|_| fail("authentication failed"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| fail("not UTF-8"))
    }

    /// Opens `stored` if it is sealed; a value written before sealing existed (or a
    /// tombstone, which holds nothing personal) is returned as it is.
    pub fn open_or_plain(
        &self,
        tenant: &str,
        field: &str,
        stored: &str,
    ) -> Result<String, VaultError> {
        if is_sealed(stored) {
            self.unseal(tenant, field, stored)
        } else {
            Ok(stored.to_owned())
        }
    }

    /// The blind index of a normalised value of `kind` (`phone`, `email`, `identity:wecom`…).
    pub fn index(&self, tenant: &str, kind: &str, value: &str) -> Result<String, VaultError> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let keys = tenants
            .get(tenant)
            .ok_or_else(|| VaultError::NoTenant(tenant.into()))?;
        let mut ctx = hmac::Context::with_key(&keys.index);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        Ok(hex(&ctx.sign().as_ref()[..16]))
    }

    /// Sets the attribute keys `tenant` seals (`contact.sealed_attributes`), as the host
    /// starts.
    pub fn set_sealed_attributes(&self, tenant: &str, keys: &[String]) {
        self.sealed_attributes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), keys.into());
    }

    /// The attribute keys `tenant` seals, sorted (empty unless configured).
    pub fn sealed_attributes(&self, tenant: &str) -> Arc<[String]> {
        self.sealed_attributes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The newest data key version of a tenant (what [`Vault::seal`] uses).
    pub fn current_version(&self, tenant: &str) -> Option<u32> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        tenants.get(tenant)?.data.last_key_value().map(|(v, _)| *v)
    }

    /// Adds a data key version for a tenant (wrapped under the current master key) and loads
    /// it; returns the version. Other hosts must [`Vault::refresh`] before they read values
    /// sealed under it (`shoal keys rotate --reencrypt` waits for that, see its docs).
    pub async fn add_data_version(
        &self,
        pool: &AnyPool,
        keys: &KeysConfig,
        tenant: &str,
    ) -> Result<u32, VaultError> {
        let masters = read_masters(keys)?;
        let current = &masters[&keys.current];
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM tenant_keys WHERE tenant_id = $1 AND purpose = 'data'")
            .bind(tenant)
            .fetch_one(pool)
            .await?;
        let next: i64 = row.try_get::<i64, _>(0)? + 1;
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, purpose, version, master_id, wrapped, created_at) VALUES ($1, 'data', $2, $3, $4, $5)",
        )
        .bind(tenant)
        .bind(next)
        .bind(&keys.current)
        .bind(wrap(current, tenant, "data", next, &random_key()))
        .bind(now_micros())
        .execute(pool)
        .await?;
        self.load(pool, &masters).await?;
        Ok(next as u32)
    }

    /// Wraps every tenant key that is not under the current master key again under it
    /// (`shoal keys rotate`); the values they seal are untouched.
    pub async fn rewrap(pool: &AnyPool, keys: &KeysConfig) -> Result<Rewrapped, VaultError> {
        let masters = read_masters(keys)?;
        let current = &masters[&keys.current];
        let mut done = Rewrapped::default();
        for row in Stored::all(pool).await? {
            if row.master == keys.current {
                done.current += 1;
                continue;
            }
            let raw = row.open(&masters)?;
            let Stored {
                tenant,
                purpose,
                version,
                master,
                ..
            } = row;
            sqlx::query(
                "UPDATE tenant_keys SET master_id = $1, wrapped = $2 WHERE tenant_id = $3 AND purpose = $4 AND version = $5 AND master_id = $6",
            )
            .bind(&keys.current)
            .bind(wrap(current, &tenant, &purpose, version, &raw))
            .bind(&tenant)
            .bind(&purpose)
            .bind(version)
            .bind(&master)
            .execute(pool)
            .await?;
            done.rewrapped += 1;
        }
        Ok(done)
    }
}

/// A row of `tenant_keys`.
struct Stored {
    tenant: String,
    purpose: String,
    version: i64,
    master: String,
    wrapped: String,
}

impl Stored {
    async fn all(pool: &AnyPool) -> Result<Vec<Stored>, VaultError> {
        let rows = sqlx::query(
            "SELECT tenant_id, purpose, version, master_id, wrapped FROM tenant_keys ORDER BY tenant_id, purpose, version",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Stored {
                    tenant: r.try_get(0)?,
                    purpose: r.try_get(1)?,
                    version: r.try_get(2)?,
                    master: r.try_get(3)?,
                    wrapped: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The key, unwrapped by the master key it names.
    fn open(&self, masters: &HashMap<String, LessSafeKey>) -> Result<Vec<u8>, VaultError> {
        let fail = |message: &str| VaultError::Unwrap {
            tenant: self.tenant.clone(),
            purpose: self.purpose.clone(),
            version: self.version,
            master: self.master.clone(),
            message: message.into(),
        };
        let key = masters
            .get(&self.master)
            .ok_or_else(|| fail("which is not configured in `keys.master`"))?;
        unwrap(
            key,
            &self.tenant,
            &self.purpose,
            self.version,
            &self.wrapped,
        )
        .ok_or_else(|| fail("and does not open with it (a different key of that name?)"))
    }
}

/// The data key version a sealed value names, or `None` for what is not sealed.
pub fn sealed_version(value: &str) -> Option<u32> {
    parse_sealed(value).map(|(v, _)| v)
}

/// True when a stored value is sealed (rather than a legacy plain value).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with("s1:")
}

fn parse_sealed(value: &str) -> Option<(u32, &str)> {
    let rest = value.strip_prefix("s1:")?;
    let (version, body) = rest.split_once(':')?;
    Some((version.parse().ok()?, body))
}

fn aad(tenant: &str, field: &str) -> String {
    format!("shoal|{tenant}|{field}")
}

fn key_aad(tenant: &str, purpose: &str, version: i64) -> String {
    format!("shoal-key|{tenant}|{purpose}|{version}")
}

fn aead_key(raw: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("32-byte AES-256 key"))
}

/// `N` bytes from the system's random source (keys, nonces, salts, session tokens).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source");
    bytes
}

fn random_key() -> [u8; KEY_LEN] {
    random_bytes()
}

fn seal_raw(key: &LessSafeKey, aad: &str, plain: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random_bytes();
    let mut body = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut body,
    )
    .expect("AES-GCM seals any input under 64 GiB");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    out
}

fn seal_with(key: &LessSafeKey, version: u32, tenant: &str, field: &str, plain: &[u8]) -> String {
    format!(
        "s1:{version}:{}",
        B64URL.encode(seal_raw(key, &aad(tenant, field), plain))
    )
}

fn wrap(master: &LessSafeKey, tenant: &str, purpose: &str, version: i64, key: &[u8]) -> String {
    B64.encode(seal_raw(master, &key_aad(tenant, purpose, version), key))
}

fn unwrap(
    master: &LessSafeKey,
    tenant: &str,
    purpose: &str,
    version: i64,
    wrapped: &str,
) -> Option<Vec<u8>> {
    let mut bytes = B64.decode(wrapped.trim()).ok()?;
    if bytes.len() != NONCE_LEN + KEY_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let mut rest = bytes.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
    let plain = master
        .open_in_place(
            nonce,
            Aad::from(key_aad(tenant, purpose, version).as_bytes()),
            &mut rest,
        )
        .ok()?;
    Some(plain.to_vec())
}

/// Reads every configured master key (creating a `generate`d file that does not exist).
fn read_masters(keys: &KeysConfig) -> Result<HashMap<String, LessSafeKey>, VaultError> {
    keys.master
        .iter()
        .map(|(name, source)| Ok((name.clone(), aead_key(&read_master(name, source)?))))
        .collect()
}

fn read_master(name: &str, source: &MasterKeyConfig) -> Result<[u8; KEY_LEN], VaultError> {
    let fail = |message: String| VaultError::MasterKey {
        name: name.into(),
        message,
    };
    let text = match (&source.env, &source.file) {
        (Some(var), None) => std::env::var(var)
            .map_err(|_| fail(format!("environment variable {var} is not set")))?,
        (None, Some(file)) => {
            if source.generate && !file.exists() {
                generate(file)
                    .map_err(|e| fail(format!("cannot create {}: {e}", file.display())))?;
            }
            std::fs::read_to_string(file)
                .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?
        }
        _ => return Err(fail("give exactly one of `env` or `file`".into())),
    };
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| fail("is not base64".into()))?;
    bytes.try_into().map_err(|_| {
        fail(format!(
            "must be {KEY_LEN} bytes (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
        ))
    })
}

/// Writes a fresh key to `file` without ever replacing one: written beside it, then linked
/// into place (a host starting at the same time keeps whichever link won).
fn generate(file: &Path) -> std::io::Result<()> {
    crate::config::ensure_parent_dir(file)?;
    // unique per call: hosts started at once in one process (tests) must not share it
    let nonce: [u8; 8] = random_bytes();
    let tmp = file.with_extension(format!("tmp-{}-{}", std::process::id(), hex(&nonce)));
    std::fs::write(&tmp, format!("{}\n", B64.encode(random_key())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    let linked = std::fs::hard_link(&tmp, file);
    std::fs::remove_file(&tmp)?;
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => {
            tracing::warn!(file = %file.display(), "generated a master key: keep it apart from the database and its backups");
            Ok(())
        }
    }
}

/// Microseconds since the epoch, UTC (the storage convention; this module sits below
/// `storage`, whose `Db` carries the vault).
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_with(tenant: &str) -> Vault {
        let vault = Vault::default();
        let mut data = BTreeMap::new();
        data.insert(1, aead_key(&[7u8; 32]));
        vault.tenants.write().unwrap().insert(
            tenant.into(),
            TenantKeys {
                data,
                index: hmac::Key::new(hmac::HMAC_SHA256, &[9u8; 32]),
            },
        );
        vault
    }

    #[test]
    fn a_sealed_value_opens_only_as_what_it_was_sealed_as() {
        let vault = vault_with("t");
        let sealed = vault.seal("t", "phones", "[\"+8613800138000\"]").unwrap();
        assert!(sealed.starts_with("s1:1:"));
        assert!(!sealed.contains("138"));
        assert_eq!(
            vault.unseal("t", "phones", &sealed).unwrap(),
            "[\"+8613800138000\"]"
        );
        assert!(
            vault.unseal("t", "emails", &sealed).is_err(),
            "another field"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(vault.unseal("t", "phones", &tampered).is_err());
        assert!(matches!(
            vault.seal("u", "phones", "x"),
            Err(VaultError::NoTenant(_))
        ));
    }

    #[test]
    fn two_seals_of_one_value_differ_but_its_index_does_not() {
        let vault = vault_with("t");
        assert_ne!(
            vault.seal("t", "f", "a").unwrap(),
            vault.seal("t", "f", "a").unwrap()
        );
        let i = vault.index("t", "phone", "+8613800138000").unwrap();
        assert_eq!(i.len(), 32);
        assert_eq!(i, vault.index("t", "phone", "+8613800138000").unwrap());
        assert_ne!(i, vault.index("t", "email", "+8613800138000").unwrap());
    }

    #[test]
    fn hosts_generating_one_key_file_at_once_all_read_the_same_key() {
        let dir = std::env::temp_dir().join(format!("shoal-vault-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("data").join("master.key");
        let source = MasterKeyConfig {
            env: None,
            file: Some(file.clone()),
            generate: true,
        };
        let keys: Vec<[u8; KEY_LEN]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| read_master("local", &source).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "one key for every host"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_tenant_purpose_and_version() {
        let master = aead_key(&[1u8; 32]);
        let wrapped = wrap(&master, "t", "data", 1, &[5u8; 32]);
        assert_eq!(
            unwrap(&master, "t", "data", 1, &wrapped).unwrap(),
            vec![5u8; 32]
        );
        assert!(unwrap(&master, "u", "data", 1, &wrapped).is_none());
        assert!(unwrap(&master, "t", "index", 1, &wrapped).is_none());
        assert!(unwrap(&master, "t", "data", 2, &wrapped).is_none());
        assert!(unwrap(&aead_key(&[2u8; 32]), "t", "data", 1, &wrapped).is_none());
    }
}
