//! The plugin ABIs this host accepts, one module per frozen WIT version (as Zed keeps
//! `since_vX_Y_Z`), and [`guest`], which calls a module of any of them through the newest
//! types (a 1.0 module's answers converted), so modules built with older SDKs keep loading.

pub mod calls_v1_0;
pub mod guest;
pub mod v1_0;
pub mod v1_1;

/// The newest types: what the host's engines consume.
pub use v1_1::shoal::plugin::types as latest;

/// A parsed `major.minor.patch` ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbiVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl AbiVersion {
    pub fn parse(text: &str) -> Option<AbiVersion> {
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        let version = AbiVersion {
            major: parts.next()??,
            minor: parts.next().unwrap_or(Some(0))?,
            patch: parts.next().unwrap_or(Some(0))?,
        };
        parts.next().is_none().then_some(version)
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The oldest and newest ABI this host loads.
pub const OLDEST: AbiVersion = AbiVersion {
    major: 1,
    minor: 0,
    patch: 0,
};
pub const NEWEST: AbiVersion = AbiVersion {
    major: 1,
    minor: 1,
    patch: 0,
};

/// Whether a module built for `abi` can be loaded, and if not, what to tell its vendor.
pub fn check_supported(abi: AbiVersion) -> Result<(), String> {
    let supported =
        abi.major == NEWEST.major && abi >= OLDEST && (abi.minor, 0) <= (NEWEST.minor, 0);
    if supported {
        return Ok(());
    }
    let range = format!(
        "{}.{}–{}.{}",
        OLDEST.major, OLDEST.minor, NEWEST.major, NEWEST.minor
    );
    if abi > NEWEST {
        Err(format!(
            "built with SDK {}.{} (plugin ABI {abi}); this host supports {range}: upgrade Shoal, or rebuild the module with shoal-sdk {}.{}",
            abi.major, abi.minor, NEWEST.major, NEWEST.minor
        ))
    } else {
        Err(format!(
            "built with SDK {}.{} (plugin ABI {abi}), which this host no longer supports ({range}): rebuild the module with shoal-sdk {}.{}",
            abi.major, abi.minor, NEWEST.major, NEWEST.minor
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Released contracts never change: modules built against them must keep loading.
    #[test]
    fn v1_0_is_frozen() {
        let wit = include_bytes!("../../../../schema/wit/v1.0.0/plugin.wit");
        assert_eq!(
            crate::sha256_hex(wit),
            "c14d9fab0f638f1608f8999e50c2cd8eebb7ad9998bff2993878f52ce8772e74",
            "schema/wit/v1.0.0 is frozen: put the change in a new version folder and PENDING_CHANGES.md (see schema/wit/README.md)"
        );
    }

    #[test]
    fn v1_1_is_frozen() {
        let wit = include_bytes!("../../../../schema/wit/v1.1.0/plugin.wit");
        assert_eq!(
            crate::sha256_hex(wit),
            "9a7d5280fb540f1a72c0b3b035187b7689f7f3a5e910cee8c6858ae87003f407",
            "schema/wit/v1.1.0 is frozen: put the change in a new version folder and PENDING_CHANGES.md (see schema/wit/README.md)"
        );
    }

    /// 1.1 only adds to 1.0: every line of 1.0 (but the version) is in 1.1, in order, so a
    /// 1.0 value converts into the same 1.1 value (`guest::upgrade`).
    #[test]
    fn v1_1_only_adds_to_v1_0() {
        let old = include_str!("../../../../schema/wit/v1.0.0/plugin.wit");
        let new = include_str!("../../../../schema/wit/v1.1.0/plugin.wit");
        let mut rest = new
            .lines()
            .filter(|l| !l.contains("1.1.0") && !l.contains("(frozen)"));
        for line in old.lines().filter(|l| !l.contains("1.0.0")) {
            let line = line.replace(
                ", tag-decision}",
                ", tag-decision, ticket-template, ticket-request, ticket-proposal}",
            );
            assert!(
                rest.any(|l| l == line),
                "schema/wit/v1.1.0 changes or reorders this line of 1.0: {line}"
            );
        }
    }

    /// The SDK is what vendors depend on: it must never pull in the host.
    #[test]
    fn the_sdk_does_not_depend_on_the_host() {
        let manifest = include_str!("../../../../sdk/Cargo.toml");
        let deps = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        for host_crate in [
            "shoal-base",
            "shoal-crm",
            "shoal-plugin-host",
            "shoal-server",
            "wasmtime",
            "sqlx",
            "axum",
            "async-graphql",
            "tokio",
        ] {
            assert!(
                !deps.contains(host_crate),
                "sdk/Cargo.toml depends on {host_crate}"
            );
        }
    }

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(AbiVersion::parse("1.0.0"), Some(OLDEST));
        assert_eq!(AbiVersion::parse("1"), Some(OLDEST));
        assert_eq!(AbiVersion::parse("1.x"), None);
        assert!(check_supported(AbiVersion::parse("1.0.3").unwrap()).is_ok());
        assert!(check_supported(AbiVersion::parse("1.1.0").unwrap()).is_ok());
        let newer = check_supported(AbiVersion::parse("1.3.0").unwrap()).unwrap_err();
        assert!(
            newer.contains("built with SDK 1.3") && newer.contains("supports 1.0–1.1"),
            "{newer}"
        );
        assert!(check_supported(AbiVersion::parse("2.0.0").unwrap()).is_err());
        assert!(check_supported(AbiVersion::parse("0.9.0").unwrap()).is_err());
    }
}
