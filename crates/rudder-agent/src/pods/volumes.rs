//! A pod's volumes on the node, under `<agent>/pods/<uid>/volumes/`:
//! emptyDir (tmpfs for `medium: Memory`), hostPath with its type check,
//! and the projected kinds (configMap, secret, downwardAPI, projected)
//! written as the kubelet's atomic writer writes them, so that updates
//! reach running containers: files live in a `..<time>` directory,
//! `..data` points at it, and each visible name is a link through
//! `..data`; an update writes a new directory and swaps `..data` at once.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::env::{self, NodeResources, Sources};

/// Where each volume of a pod is on the node.
pub(crate) type Paths = HashMap<String, PathBuf>;

/// Files of a projected volume: relative path → (content, mode).
type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// Sets up (or refreshes) every volume of `pod` under `dir`. The error is
/// the FailedMount message of the first volume that cannot be set up.
pub(crate) async fn prepare(
    pod: &Pod,
    dir: &Path,
    sources: &mut Sources,
    node: NodeResources,
) -> Result<Paths, String> {
    let mut paths = Paths::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = volume(pod, v, dir, sources, node)
            .await
            .map_err(|e| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name))?;
        paths.insert(v.name.clone(), path);
    }
    Ok(paths)
}

async fn volume(
    pod: &Pod,
    v: &Volume,
    dir: &Path,
    sources: &mut Sources,
    node: NodeResources,
) -> Result<PathBuf, String> {
    let io = |e: std::io::Error| e.to_string();
    if let Some(host) = &v.host_path {
        let path = PathBuf::from(&host.path);
        host_path_check(&path, host.type_.as_deref().unwrap_or(""))?;
        return Ok(path);
    }
    if let Some(empty) = &v.empty_dir {
        let path = dir.join("empty-dir").join(&v.name);
        std::fs::create_dir_all(&path).map_err(io)?;
        // World-writable, as the kubelet makes emptyDirs (0777).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        if empty.medium.as_deref() == Some("Memory") && !is_mount_point(&path) {
            let mut options = "mode=0777".to_string();
            if let Some(size) = empty
                .size_limit
                .as_ref()
                .and_then(|q| rudder_api::quantity::parse_value(&q.0))
            {
                options.push_str(&format!(",size={size}"));
            }
            run(std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
                .arg(&path))?;
        }
        return Ok(path);
    }
    let payload = if let Some(cm) = &v.config_map {
        let Some(data) = sources.config_map(&cm.name).await? else {
            if cm.optional == Some(true) {
                return write_projection(&dir.join("configmap").join(&v.name), &Payload::new())
                    .map_err(io);
            }
            return Err(format!("configmap {:?} not found", cm.name));
        };
        keys(
            "configmap",
            &data,
            cm.items.as_deref(),
            mode(cm.default_mode),
            cm.optional,
        )?
    } else if let Some(secret) = &v.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let Some(data) = sources.secret(&name).await? else {
            if secret.optional == Some(true) {
                return write_projection(&dir.join("secret").join(&v.name), &Payload::new())
                    .map_err(io);
            }
            return Err(format!("secret {name:?} not found"));
        };
        keys(
            "secret",
            &data,
            secret.items.as_deref(),
            mode(secret.default_mode),
            secret.optional,
        )?
    } else if let Some(d) = &v.downward_api {
        downward(
            pod,
            d.items.as_deref().unwrap_or_default(),
            mode(d.default_mode),
            node,
        )?
    } else if let Some(p) = &v.projected {
        let default = mode(p.default_mode);
        let mut payload = Payload::new();
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                match sources.config_map(&cm.name).await? {
                    Some(data) => payload.extend(keys(
                        "configmap",
                        &data,
                        cm.items.as_deref(),
                        default,
                        cm.optional,
                    )?),
                    None if cm.optional == Some(true) => {}
                    None => return Err(format!("configmap {:?} not found", cm.name)),
                }
            } else if let Some(s) = &source.secret {
                match sources.secret(&s.name).await? {
                    Some(data) => payload.extend(keys(
                        "secret",
                        &data,
                        s.items.as_deref(),
                        default,
                        s.optional,
                    )?),
                    None if s.optional == Some(true) => {}
                    None => return Err(format!("secret {:?} not found", s.name)),
                }
            } else if let Some(d) = &source.downward_api {
                payload.extend(downward(
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    default,
                    node,
                )?);
            }
            // serviceAccountToken and clusterTrustBundle sources need
            // token issuance, which does not exist yet.
        }
        payload
    } else {
        return Err("this volume type is not supported by the node agent yet".into());
    };
    let kind = if v.config_map.is_some() {
        "configmap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.downward_api.is_some() {
        "downward-api"
    } else {
        "projected"
    };
    write_projection(&dir.join(kind).join(&v.name), &payload).map_err(io)
}

/// The volume's default file mode (Kubernetes' default is 0644).
fn mode(m: Option<i32>) -> u32 {
    m.map_or(0o644, |m| (m as u32) & 0o7777)
}

/// The files of a configMap or secret volume: every key, or the listed
/// items (a missing listed key is an error unless the source is optional).
fn keys(
    kind: &str,
    data: &env::Data,
    items: Option<&[KeyToPath]>,
    default: u32,
    optional: Option<bool>,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items {
        None | Some([]) => {
            for (k, v) in data {
                payload.insert(k.clone(), (v.clone(), default));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        let mode = item.mode.map_or(default, |m| (m as u32) & 0o7777);
                        payload.insert(item.path.clone(), (v.clone(), mode));
                    }
                    None if optional == Some(true) => {}
                    None => {
                        return Err(format!(
                            "{kind} references non-existent {} key: {}",
                            if kind == "configmap" {
                                "config"
                            } else {
                                "secret"
                            },
                            item.key
                        ));
                    }
                }
            }
        }
    }
    Ok(payload)
}

fn downward(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default: u32,
    node: NodeResources,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            env::field(pod, &f.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let c = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == name)
                .ok_or_else(|| format!("container {name:?} not found in the pod"))?;
            env::resource(
                c,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                node,
            )?
        } else {
            continue;
        };
        let mode = item.mode.map_or(default, |m| (m as u32) & 0o7777);
        payload.insert(item.path.clone(), (value.into_bytes(), mode));
    }
    Ok(payload)
}

/// Writes `payload` into `dir` as the atomic writer does, unless it is
/// already what `dir/..data` holds. Returns `dir`.
fn write_projection(dir: &Path, payload: &Payload) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link)
        && same_content(&dir.join(&current), payload)
    {
        return Ok(dir.to_path_buf());
    }
    for path in payload.keys() {
        if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.starts_with("..")) {
            return Err(std::io::Error::other(format!("invalid path {path:?}")));
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let version = format!("..{nanos}");
    let staging = dir.join(&version);
    std::fs::create_dir(&staging)?;
    for (path, (content, mode)) in payload {
        let file = staging.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, content)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    let old = std::fs::read_link(&data_link).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&version, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    // Visible names: one link per top-level entry, through ..data.
    let wanted: std::collections::BTreeSet<&str> =
        payload.keys().filter_map(|p| p.split('/').next()).collect();
    for top in &wanted {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !wanted.contains(name.as_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(dir.to_path_buf())
}

fn same_content(dir: &Path, payload: &Payload) -> bool {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            return false;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                count += 1;
            }
        }
    }
    count == payload.len()
        && payload.iter().all(|(path, (content, mode))| {
            let file = dir.join(path);
            std::fs::read(&file).is_ok_and(|c| c == *content)
                && std::fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o7777 == *mode)
        })
}

/// hostPath's `type` check, creating what `…OrCreate` asks for.
fn host_path_check(path: &Path, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path);
    let p = path.display();
    let fail = |what: &str| Err(format!("hostPath type check failed: {p} is not {what}"));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                fail("a directory")
            }
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fail("a directory"),
        },
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                fail("a file")
            }
        }
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("a file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("a socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("a character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("a block device"),
        },
        other => Err(format!("unknown hostPath type {other:?}")),
    }
}

/// Whether `path` is a mount point (it is listed in /proc/self/mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let target = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(4) == Some(target.as_ref()))
    })
}

/// Runs `cmd`; its failure says the command line and what it printed.
fn run(cmd: &mut std::process::Command) -> Result<(), String> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().map_err(|e| format!("{line}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Unmounts what the pod's volumes mounted and removes its directory.
pub(crate) fn clean_up(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            if let Err(e) = run(std::process::Command::new("umount").arg(p)) {
                tracing::warn!("{e}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The pod's `/etc/hosts`, as the kubelet writes it.
pub(crate) fn hosts_file(pod: &Pod, ip: &str) -> String {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hostname = spec.and_then(|s| s.hostname.clone()).unwrap_or(name);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if !ip.is_empty() {
        match spec
            .and_then(|s| s.subdomain.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(sub) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                out.push_str(&format!(
                    "{ip}\t{hostname}.{sub}.{ns}.svc.cluster.local\t{hostname}\n"
                ));
            }
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_are_swapped_atomically_and_stale_names_go() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let v = dir.path().join("v");
        let mut payload = Payload::new();
        payload.insert("a".into(), (b"1".to_vec(), 0o644));
        payload.insert("sub/b".into(), (b"2".to_vec(), 0o600));
        write_projection(&v, &payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(v.join("a")).ok(), Some(b"1".to_vec()));
        assert_eq!(std::fs::read(v.join("sub/b")).ok(), Some(b"2".to_vec()));
        let first = std::fs::read_link(v.join("..data")).ok();
        // The same content writes nothing.
        write_projection(&v, &payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_link(v.join("..data")).ok(), first);
        payload.remove("sub/b");
        payload.insert("a".into(), (b"3".to_vec(), 0o644));
        write_projection(&v, &payload).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(v.join("a")).ok(), Some(b"3".to_vec()));
        assert!(std::fs::symlink_metadata(v.join("sub")).is_err());
        assert_ne!(std::fs::read_link(v.join("..data")).ok(), first);
        let versions = std::fs::read_dir(&v)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .count();
        assert_eq!(versions, 1, "the old version is removed");
    }
}
