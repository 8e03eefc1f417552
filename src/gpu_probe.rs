//! The probe `berth gpu-check` runs inside an environment, and the reading of its answers.
//!
//! One `sh` script (it needs nothing but a POSIX shell) asks the vendor tool, measures
//! `/dev/shm` and, when the image has Python, runs a small torch program. Every finding is one
//! line `check<TAB>status<TAB>detail`, so a missing torch or GPU is a row, never a traceback.

use serde::Serialize;

use crate::plan::GpuMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, status: Status, detail: impl Into<String>) -> Check {
        Check { name: name.to_string(), status, detail: detail.into() }
    }
}

const PYTHON_PROBE: &str = r#"
import sys
def say(k, s, d):
    print("%s\t%s\t%s" % (k, s, str(d).replace("\t", " ").replace("\n", " ")))
try:
    say("python", "pass", "Python " + sys.version.split()[0])
    try:
        import torch
    except Exception as e:
        say("torch", "fail", "torch does not import (%s: %s)" % (type(e).__name__, e))
        sys.exit(0)
    hip = getattr(torch.version, "hip", None)
    say("torch", "pass", "torch %s, %s" % (torch.__version__, ("HIP %s" % hip) if hip else ("CUDA %s" % torch.version.cuda)))
    try:
        n = torch.cuda.device_count()
    except Exception:
        n = 0
    if n == 0:
        why = "torch sees no GPU"
        if torch.version.cuda is None and not hip:
            why += ": this torch is a CPU-only build"
        say("gpus", "fail", why)
    else:
        names = [torch.cuda.get_device_name(i) for i in range(n)]
        say("gpus", "pass", "%d: %s" % (n, ", ".join(names)))
        for i in range(n):
            try:
                a = torch.randn(256, 256, device="cuda:%d" % i)
                (a @ a).sum().item()
                torch.cuda.synchronize(i)
                say("matmul-%d" % i, "pass", "256x256 product on %s" % names[i])
            except Exception as e:
                say("matmul-%d" % i, "fail", "%s: %s" % (type(e).__name__, str(e).splitlines()[0]))
    lib = "RCCL" if hip else "NCCL"
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_nccl_available():
            v = torch.cuda.nccl.version() if n > 0 else None
            v = ".".join(map(str, v)) if isinstance(v, tuple) else (v or "")
            say("nccl", "pass", ("%s %s" % (lib, v)).strip())
        else:
            say("nccl", "fail", "%s is not built into this torch" % lib)
    except Exception as e:
        say("nccl", "fail", "%s: %s" % (lib, str(e).splitlines()[0]))
except Exception as e:
    say("probe", "fail", "%s: %s" % (type(e).__name__, e))
"#;

/// The probe script for an environment whose GPUs arrive through `mode`.
pub fn script(mode: GpuMode) -> String {
    let tool = match mode {
        GpuMode::Nvidia | GpuMode::Wsl => "nvidia-smi -L",
        GpuMode::Amd => "rocm-smi --showproductname",
        GpuMode::None => "",
    };
    format!(
        r#"say() {{ printf '%s\t%s\t%s\n' "$1" "$2" "$3"; }}
tool='{tool}'
if [ -n "$tool" ]; then
  bin=${{tool%% *}}
  if command -v "$bin" >/dev/null 2>&1; then
    if out=$($tool 2>&1); then say vendor-tool pass "$(printf '%s' "$out" | head -n 8 | tr '\n\t' '; ')"
    else say vendor-tool fail "$bin failed: $(printf '%s' "$out" | head -n 3 | tr '\n\t' '  ')"; fi
  else
    say vendor-tool fail "$bin is not in the container"
  fi
fi
set -- $(df -k /dev/shm 2>/dev/null | tail -n 1)
say shm-kb info "${{2:-0}}"
py=$(command -v python3 || command -v python || true)
if [ -z "$py" ]; then
  say python fail "no python in the image"
else
  "$py" - <<'PYTHON'
{PYTHON_PROBE}
PYTHON
fi
"#
    )
}

/// Parse the probe's lines; `shm-kb` is returned apart.
pub fn parse(output: &str) -> (Vec<Check>, Option<u64>) {
    let mut checks = Vec::new();
    let mut shm = None;
    for line in output.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(name), Some(status), detail) = (f.next(), f.next(), f.next()) else { continue };
        if name == "shm-kb" {
            shm = detail.and_then(|d| d.trim().parse::<u64>().ok()).map(|kb| kb * 1024);
            continue;
        }
        let status = match status {
            "pass" => Status::Pass,
            "warn" => Status::Warn,
            "fail" => Status::Fail,
            _ => Status::Skip,
        };
        checks.push(Check::new(name, status, detail.unwrap_or("").trim()));
    }
    (checks, shm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_become_checks() {
        let out = "vendor-tool\tpass\tGPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-x); \nshm-kb\tinfo\t16777216\n\
                   python\tpass\tPython 3.11.9\ntorch\tpass\ttorch 2.5.1, CUDA 12.4\ngpus\tpass\t1: NVIDIA H100\n\
                   noise without tabs\n";
        let (checks, shm) = parse(out);
        assert_eq!(shm, Some(16 << 30));
        assert_eq!(checks.len(), 4);
        assert_eq!(
            checks[0],
            Check::new("vendor-tool", Status::Pass, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-x);")
        );
    }

    #[test]
    fn the_script_asks_the_vendor_tool_only_with_a_gpu() {
        assert!(script(GpuMode::Nvidia).contains("tool='nvidia-smi -L'"));
        assert!(script(GpuMode::Amd).contains("tool='rocm-smi --showproductname'"));
        assert!(script(GpuMode::None).contains("tool=''"));
    }
}
