//! Ed25519 keys on disk: the secret as hex in a file only its owner can read, created once.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0} already holds a key; it is not overwritten (move it away first)")]
    Exists(PathBuf),
    #[error("no key at {0}; create one with `mercato keys new`")]
    Missing(PathBuf),
    #[error("{0} does not hold a key (64 hex digits)")]
    Malformed(PathBuf),
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a participant's key lives when no path is given: `~/.config/mercato/key.hex`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config/mercato/key.hex")
}

/// Creates a new key at `path` (never over an existing one).
pub fn generate(path: &Path) -> Result<SigningKey, KeyError> {
    if path.exists() {
        return Err(KeyError::Exists(path.to_path_buf()));
    }
    let key = crate::generate();
    write_secret(path, &crate::hex_encode(&key.to_bytes()))?;
    Ok(key)
}

/// Writes a secret to a new file only its owner can read (never over an existing one).
pub fn write_secret(path: &Path, hex: &str) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            io(e)
        }
    })?;
    file.write_all(hex.as_bytes()).map_err(io)
}

pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(path.to_path_buf()))
        }
        Err(source) => {
            return Err(KeyError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let bytes =
        crate::hex_decode(text.trim()).ok_or_else(|| KeyError::Malformed(path.to_path_buf()))?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// The key at `path`, created there first when there is none (a service's own identity).
pub fn load_or_generate(path: &Path) -> Result<SigningKey, KeyError> {
    match load(path) {
        Err(KeyError::Missing(_)) => match generate(path) {
            // Another process created it in between: use that one.
            Err(KeyError::Exists(_)) => load(path),
            r => r,
        },
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.hex");
        let key = generate(&path).unwrap();
        assert_eq!(load_or_generate(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(load(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(generate(&path), Err(KeyError::Exists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o077,
                0
            );
        }
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(load(&path), Err(KeyError::Malformed(_))));
        assert!(matches!(
            load(&dir.path().join("none")),
            Err(KeyError::Missing(_))
        ));
    }
}
