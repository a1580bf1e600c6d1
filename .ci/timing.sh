# Sourced by the install scripts: each prints one line saying what it did
# for its component and how long it took, e.g. "versitygw: built v1.8.0 in
# 5m12s" or "versitygw: cached (0.0s)".
#
#   timing_start            remember the start
#   timing_done LABEL WHAT  print "LABEL: WHAT in <elapsed>"
#   timing_kept LABEL WHAT  print "LABEL: WHAT (<elapsed>)", for nothing to do

timing_start() {
  timing_t0=$(date +%s%N)
}

# timing_elapsed prints the time since timing_start: 0.3s, 41.2s, 5m12s.
timing_elapsed() {
  local ms=$((($(date +%s%N) - timing_t0) / 1000000))
  if [ "$ms" -lt 60000 ]; then
    printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
  else
    local s=$((ms / 1000))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
  fi
}

timing_done() {
  echo "$1: $2 in $(timing_elapsed)"
}

timing_kept() {
  echo "$1: $2 ($(timing_elapsed))"
}
