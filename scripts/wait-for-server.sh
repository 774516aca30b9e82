# wait-for-server.sh: sourced by the benchmark scripts that start `loraserve serve` in the background.
# wait_for_server PORT PID LOG: returns once GET /health answers 200 (up to 120 s); if the server exits first or
# never answers, prints the end of its log and exits the calling script with 1.
wait_for_server() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && return 0
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.5
  done
  echo "the server on port $port did not come up; the end of $log:" >&2
  tail -20 "$log" >&2
  exit 1
}
