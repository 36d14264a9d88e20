// A socket that follows the real-time contract (README, "Real-time contract"), shared by the desk and the
// wallboard:
//   1. ask REST for a ticket (POST /api/v1/ws-tickets/, with the page's session and CSRF token);
//   2. open the socket with ?ticket=… (single use, valid for a minute);
//   3. the first message is the welcome: each stream's current seq. Read the REST truth now (onResync);
//   4. every push carries stream and seq; a seq other than the last one + 1 means pushes were lost: resync;
//      a new welcome mid-way (the server re-joined its groups after a Redis restart) also means resync;
//   5. when the socket closes, reconnect with a new ticket after a growing, jittered pause (0.5 s … 30 s),
//      back to 0.5 s once a welcome arrives. A refused ticket request (signed out) stops and says so.
"use strict";
function liveSocket(path, {csrf, onResync, onMessage, onStatus}) {
  const state = {socket: null, stopped: false, attempt: 0, last: {}, resyncs: 0, gaps: 0};
  const status = (text) => { if (onStatus) onStatus(text, state); };
  const resync = (why) => { state.resyncs += 1; status(state.socket ? "live" : "connecting…");
                            Promise.resolve(onResync(why)).catch((err) => console.warn("resync failed", err)); };
  async function ticket() {
    const response = await fetch("/api/v1/ws-tickets/", {method: "POST", credentials: "same-origin",
      headers: {"X-CSRFToken": csrf, "Accept": "application/json"}});
    if (response.status === 401 || response.status === 403) {
      const err = new Error("signed out"); err.signedOut = true; throw err;
    }
    if (!response.ok) throw new Error(`no ticket: HTTP ${response.status}`);
    return (await response.json()).ticket;
  }
  function later() {
    if (state.stopped) return;
    const pause = Math.min(30000, 500 * 2 ** state.attempt) * (0.5 + Math.random() / 2);
    state.attempt = Math.min(state.attempt + 1, 10);
    status("reconnecting…");
    setTimeout(open, pause);
  }
  async function open() {
    if (state.stopped) return;
    let value;
    try { value = await ticket(); } catch (err) {
      if (err.signedOut) { state.stopped = true; status("signed out"); return; }
      later(); return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${path}?ticket=${encodeURIComponent(value)}`);
    state.socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "welcome") {
        state.last = {...message.seq}; state.attempt = 0; resync(message.rejoined ? "rejoined" : "welcome");
        return;
      }
      let gap = false;
      if (typeof message.seq === "number" && message.stream) {
        const last = state.last[message.stream];
        gap = last !== undefined && message.seq !== last + 1;
        state.last[message.stream] = message.seq;
      }
      onMessage(message);
      if (gap) { state.gaps += 1; resync("gap"); }
    };
    socket.onclose = () => { if (state.socket === socket) state.socket = null; later(); };
  }
  open();
  return {
    state,
    close() { state.stopped = true; if (state.socket) state.socket.close(); },
  };
}
