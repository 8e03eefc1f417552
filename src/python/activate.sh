# berth: activate the Python environment (berth's README: "The right Python everywhere").
# POSIX sh, sourced: $BERTH_PYTHON_ENV names it (berth.toml [python] env, or what berth found), "none" for
# none; else the first of $VIRTUAL_ENV, $CONDA_PREFIX, the one whose python comes first on PATH,
# /opt/venv, /venv, then conda roots (their base environment).
_b=${BERTH_PYTHON_ENV-}
if [ -z "$_b" ]; then
  _p=$(command -v python3 2>/dev/null || command -v python 2>/dev/null)
  for _c in "${VIRTUAL_ENV-}" "${CONDA_PREFIX-}" "${_p%/bin/*}" /opt/venv /venv "${CONDA_DIR-}" \
    "${MAMBA_ROOT_PREFIX-}" /opt/conda /opt/miniconda3 /opt/miniforge3 /opt/mambaforge /opt/micromamba; do
    if [ -n "$_c" ] && { [ -f "$_c/pyvenv.cfg" ] || [ -d "$_c/conda-meta" ]; }; then _b=$_c; break; fi
  done
fi
case $_b in
  '' | none) _b=none ;;
  *)
    if [ -f "$_b/pyvenv.cfg" ]; then
      VIRTUAL_ENV=$_b
      export VIRTUAL_ENV
    elif [ -d "$_b/conda-meta" ]; then
      case $_b in */envs/*) _n=${_b##*/} ;; *) _n=base ;; esac
      CONDA_PREFIX=$_b CONDA_DEFAULT_ENV=$_n CONDA_SHLVL=1 CONDA_PROMPT_MODIFIER="($_n) "
      export CONDA_PREFIX CONDA_DEFAULT_ENV CONDA_SHLVL CONDA_PROMPT_MODIFIER
    else
      echo "berth: $_b is neither a venv (pyvenv.cfg) nor a conda environment (conda-meta/): not activated" >&2
      _b=none
    fi
    ;;
esac
if [ "$_b" != none ]; then
  _r= _o=$IFS
  IFS=:
  for _d in $PATH; do [ "$_d" = "$_b/bin" ] || _r=$_r${_r:+:}$_d; done
  IFS=$_o
  PATH=$_b/bin${_r:+:}$_r
  export PATH
  for _f in "$_b"/etc/conda/activate.d/*.sh; do [ -r "$_f" ] && . "$_f"; done
fi
BERTH_PYTHON_ENV=$_b
export BERTH_PYTHON_ENV
unset _b _p _c _n _r _o _d _f
