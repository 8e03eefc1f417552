# Run by the generated Dockerfile inside the image being built (berth image::companions):
# prints the pip arguments for torch's companions named in argv, pinned to the torch the
# image really carries, with the PyTorch wheel index of its build (CUDA, ROCm or CPU).
# Without torch, or for a torch release the table does not know, the names stay unpinned.
import importlib.metadata as m, os, re, sys

T = __TABLE__
want = sys.argv[1:]
d = [x for x in m.distributions() if (x.metadata["Name"] or "").lower() == "torch"]
t = d[0].version if d else ""
n = [int(x) for x in re.findall(r"\d+", t.split("+")[0])[:3]]
row = T.get("%d.%d" % (n[0], n[1])) if len(n) >= 2 else None
if not row:
    print(" ".join(want))
    sys.exit()
f = str(d[0].locate_file("torch/version.py"))
s = open(f).read() if os.path.exists(f) else ""


def field(k):
    x = re.search(r"^%s\s*(?::[^=]*)?=\s*['\"]([0-9][0-9.]*)" % k, s, re.M)
    return x.group(1) if x else ""


local = t.split("+", 1)[1] if "+" in t else ""
cuda = field("cuda") or (local[2:-1] + "." + local[-1] if re.fullmatch(r"cu\d{3,}", local) else "")
hip = field("hip") or (local[4:] if re.match(r"rocm\d", local) else "")


def key(v):
    return [int(x) for x in re.findall(r"\d+", v)]


def pick(have, options):
    ok = [o for o in options if key(o) <= key(have)]
    return max(ok, key=key) if ok else ""


version = ".".join(str(x) for x in n + [0] * (3 - len(n)))
out = []
for w in want:
    if w == "torch":
        out.append("torch==" + version)
    elif w == "torchvision":
        out.append("torchvision==%s.%d" % (row[0], n[2] if len(n) > 2 else 0))
    elif w == "torchaudio":
        out.append("torchaudio==" + version)
variant = "cpu"
if hip and pick(hip, row[2]):
    variant = "rocm" + pick(hip, row[2])
elif cuda and pick(cuda, row[1]):
    variant = "cu" + pick(cuda, row[1]).replace(".", "")
print(" ".join(out + ["--extra-index-url", "https://download.pytorch.org/whl/" + variant]))
