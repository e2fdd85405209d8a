//! What this machine has: cores, memory, disk, network interfaces, and NVIDIA GPUs through NVML
//! when a driver is installed (none, and no error, when it is not).

use std::path::Path;

use catalog::model::{Compute, Gpu, GpuShare, Resources};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// Link speed when the kernel reports one.
    pub speed_mbps: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuDevice {
    pub index: u32,
    pub model: String,
    pub memory_mib: u64,
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovered {
    pub architecture: String,
    pub cores: u32,
    pub memory_mib: u64,
    /// Free space where the agent keeps its state.
    pub disk_gib: u64,
    pub interfaces: Vec<Interface>,
    pub gpus: Vec<GpuDevice>,
    /// Why no GPU was found, when none was (no driver, no device).
    pub gpu_note: String,
}

fn meminfo_mib(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn disk_gib(path: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    (s.f_bavail as u64).saturating_mul(s.f_frsize as u64) >> 30
}

fn interfaces() -> Vec<Interface> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<Interface> = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "lo")
        .map(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
            Interface {
                name: e.file_name().to_string_lossy().into_owned(),
                mac: read("address").trim().to_string(),
                speed_mbps: read("speed")
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .map(|s| s as u64),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// NVIDIA GPUs through NVML (loaded at run time, so a machine without the driver just has none).
pub fn gpus() -> (Vec<GpuDevice>, String) {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => return (Vec::new(), format!("no NVIDIA driver (NVML: {e})")),
    };
    let count = match nvml.device_count() {
        Ok(c) => c,
        Err(e) => return (Vec::new(), format!("NVML cannot count devices: {e}")),
    };
    let mut out = Vec::new();
    for index in 0..count {
        let Ok(d) = nvml.device_by_index(index) else {
            continue;
        };
        out.push(GpuDevice {
            index,
            model: d.name().unwrap_or_default(),
            memory_mib: d.memory_info().map_or(0, |m| m.total >> 20),
            uuid: d.uuid().unwrap_or_default(),
        });
    }
    let note = if out.is_empty() {
        "the NVIDIA driver reports no device".to_string()
    } else {
        String::new()
    };
    (out, note)
}

pub fn discover(state_dir: &Path) -> Discovered {
    let (gpus, gpu_note) = gpus();
    Discovered {
        architecture: std::env::consts::ARCH.to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_mib: meminfo_mib(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()),
        disk_gib: disk_gib(state_dir),
        interfaces: interfaces(),
        gpus,
        gpu_note,
    }
}

impl Discovered {
    /// The offer resources this machine can sell.
    pub fn resources(&self) -> Resources {
        let gpu = self.gpus.first().map(|g| Gpu {
            vendor: "NVIDIA".into(),
            model: g.model.clone(),
            share: GpuShare::Whole {
                count: self.gpus.iter().filter(|x| x.model == g.model).count() as u32,
            },
            memory_mib: g.memory_mib,
            compute_capability: String::new(),
            cores: 0,
        });
        Resources {
            compute: Some(Compute {
                architecture: match self.architecture.as_str() {
                    "x86_64" => "amd64".into(),
                    "aarch64" => "arm64".into(),
                    other => other.into(),
                },
                cpu_millicores: u64::from(self.cores) * 1000,
                memory_mib: self.memory_mib,
                storage_gib: self.disk_gib,
                pods: 0,
            }),
            gpu,
            network: None,
            data: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_discovered_and_a_missing_gpu_driver_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = discover(dir.path());
        assert!(d.cores >= 1);
        assert!(d.memory_mib > 0);
        let r = d.resources();
        assert_eq!(
            r.compute.as_ref().unwrap().cpu_millicores,
            u64::from(d.cores) * 1000
        );
        // Without a driver there are no GPUs and a note saying why; with one, each has a model.
        if d.gpus.is_empty() {
            assert!(!d.gpu_note.is_empty());
            assert!(r.gpu.is_none());
        } else {
            assert!(d
                .gpus
                .iter()
                .all(|g| !g.model.is_empty() && g.memory_mib > 0));
            assert!(r.gpu.is_some());
        }
        assert_eq!(meminfo_mib("MemTotal:       2048 kB\n"), 2);
    }
}
