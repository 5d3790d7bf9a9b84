//! Container images made here, without a registry: a one-layer OCI image
//! written as an OCI layout archive, which containerd imports. The agent's
//! pause image is made this way, and so are test images (busybox from
//! Debian's `busybox-static`).

use serde_json::json;

/// One entry of an image layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(String),
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// What the image runs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

/// A one-layer OCI image: its blobs, as a registry stores them.
#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    /// The manifest (`application/vnd.oci.image.manifest.v1+json`).
    pub manifest: Vec<u8>,
}

impl Image {
    /// `(digest, bytes)` of the layer and the config, the blobs a push
    /// uploads before the manifest.
    pub fn blobs(&self) -> [(String, &[u8]); 2] {
        [
            (sha256(&self.layer), &self.layer),
            (sha256(&self.config), &self.config),
        ]
    }
}

/// An OCI layout archive of a one-layer image, named `reference` (a full
/// reference such as `docker.io/local/busybox:v1`).
pub fn image_archive(reference: &str, entries: &[Entry], config: &Config) -> Vec<u8> {
    archive(reference, &image(entries, config))
}

/// A one-layer image of `entries` running `config`.
pub fn image(entries: &[Entry], config: &Config) -> Image {
    let layer = tar(&entries
        .iter()
        .map(|e| match e {
            Entry::Dir(path) => (path.clone(), TarKind::Dir, 0o755, Vec::new(), String::new()),
            Entry::File { path, mode, data } => (
                path.clone(),
                TarKind::File,
                *mode,
                data.clone(),
                String::new(),
            ),
            Entry::Symlink { path, target } => (
                path.clone(),
                TarKind::Symlink,
                0o777,
                Vec::new(),
                target.clone(),
            ),
        })
        .collect::<Vec<_>>());
    let layer_digest = sha256(&layer);
    let image_config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": if config.entrypoint.is_empty() { json!(null) } else { json!(config.entrypoint) },
            "Cmd": config.cmd,
            "Env": config.env,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config_bytes = serde_json::to_vec(&image_config).unwrap_or_default();
    let config_digest = sha256(&config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    });
    Image {
        layer,
        config: config_bytes,
        manifest: serde_json::to_vec(&manifest).unwrap_or_default(),
    }
}

/// An OCI layout archive holding `image`, named `reference`.
pub fn archive(reference: &str, image: &Image) -> Vec<u8> {
    let (layer, config_bytes, manifest_bytes) = (
        image.layer.clone(),
        image.config.clone(),
        image.manifest.clone(),
    );
    let (layer_digest, config_digest) = (sha256(&layer), sha256(&config_bytes));
    let manifest_digest = sha256(&manifest_bytes);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": reference,
            },
        }],
    });
    let blob = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let dir = |p: &str| {
        (
            p.to_string(),
            TarKind::Dir,
            0o755,
            Vec::new(),
            String::new(),
        )
    };
    let file = |p: String, data: Vec<u8>| (p, TarKind::File, 0o644, data, String::new());
    tar(&[
        file(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        file(
            "index.json".into(),
            serde_json::to_vec(&index).unwrap_or_default(),
        ),
        dir("blobs"),
        dir("blobs/sha256"),
        file(blob(&layer_digest), layer),
        file(blob(&config_digest), config_bytes),
        file(blob(&manifest_digest), manifest_bytes),
    ])
}

/// `sha256:<hex>`
fn sha256(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TarKind {
    File,
    Dir,
    Symlink,
}

/// A ustar archive of (path, kind, mode, data, link target) entries.
fn tar(entries: &[(String, TarKind, u32, Vec<u8>, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, kind, mode, data, target) in entries {
        let mut header = [0u8; 512];
        let (prefix, name) = split_path(path, *kind == TarKind::Dir);
        put(&mut header[0..100], name.as_bytes());
        put_octal(&mut header[100..108], u64::from(*mode));
        put_octal(&mut header[108..116], 0);
        put_octal(&mut header[116..124], 0);
        let size = if *kind == TarKind::File {
            data.len()
        } else {
            0
        };
        put_octal(&mut header[124..136], size as u64);
        put_octal(&mut header[136..148], 0);
        header[156] = match kind {
            TarKind::File => b'0',
            TarKind::Symlink => b'2',
            TarKind::Dir => b'5',
        };
        put(&mut header[157..257], target.as_bytes());
        put(&mut header[257..263], b"ustar\0");
        put(&mut header[263..265], b"00");
        put(&mut header[345..500], prefix.as_bytes());
        // The checksum is computed with its own field as spaces.
        header[148..156].fill(b' ');
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        put(&mut header[148..156], format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        if *kind == TarKind::File {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    // Two zero blocks end the archive.
    out.resize(out.len() + 1024, 0);
    out
}

/// ustar keeps names of up to 100 bytes, with up to 155 more before the
/// last `/` in the prefix field.
fn split_path(path: &str, dir: bool) -> (String, String) {
    let path = if dir {
        format!("{path}/")
    } else {
        path.to_string()
    };
    if path.len() <= 100 {
        return (String::new(), path);
    }
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(at) => (trimmed[..at].to_string(), path[at + 1..].to_string()),
        None => (String::new(), path),
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// An octal number filling the field, NUL-terminated.
fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    put(field, format!("{value:0width$o}\0").as_bytes());
}

/// The agent's sandbox image: the static `pause` program as its only file.
pub fn pause_image(reference: &str) -> Vec<u8> {
    image_archive(
        reference,
        &[Entry::File {
            path: "pause".into(),
            mode: 0o755,
            data: PAUSE.to_vec(),
        }],
        &Config {
            entrypoint: vec!["/pause".into()],
            ..Config::default()
        },
    )
}

/// A busybox image from Debian's `busybox-static` (`/bin/busybox` and a
/// link per applet, `sh` as its command): what tests run, with no registry.
pub fn busybox_image(reference: &str) -> std::io::Result<Vec<u8>> {
    Ok(archive(reference, &busybox()?))
}

/// The busybox image's blobs (see [`busybox_image`]).
pub fn busybox() -> std::io::Result<Image> {
    let busybox = std::fs::read("/bin/busybox")?;
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()?;
    let mut entries = vec![
        Entry::Dir("bin".into()),
        Entry::Dir("tmp".into()),
        Entry::Dir("etc".into()),
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: busybox,
        },
    ];
    // `busybox --list` names busybox itself: linking it would replace the
    // binary with a link to itself.
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            entries.push(Entry::Symlink {
                path: format!("bin/{applet}"),
                target: "busybox".into(),
            });
        }
    }
    let config = Config {
        cmd: vec!["/bin/sh".into()],
        env: vec!["PATH=/bin".into()],
        ..Config::default()
    };
    Ok(image(&entries, &config))
}

/// The static pause program (see `pause/pause.c`).
static PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_valid_tar_with_an_oci_layout() {
        let archive = pause_image("localhost/pause:3.10");
        assert_eq!(archive.len() % 512, 0);
        // The first member is oci-layout, with a valid checksum.
        assert_eq!(&archive[0..10], b"oci-layout");
        let mut header = archive[0..512].to_vec();
        let stored = String::from_utf8_lossy(&header[148..154]).to_string();
        header[148..156].fill(b' ');
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        assert_eq!(u64::from_str_radix(&stored, 8).ok(), Some(sum));
        assert_eq!(&archive[257..262], b"ustar");
        let long = "a/".repeat(60) + "file";
        let (prefix, name) = split_path(&long, false);
        assert_eq!(format!("{prefix}/{name}"), long);
        assert!(name.len() <= 100 && prefix.len() <= 155);
    }
}
