class HeartbeatWebSocket {
  constructor(url, options = {}) {
    this.url = url;
    this.socket = null;
    this.pingInterval = options.pingInterval || 30000; // 30 seconds
    this.pingTimeout = options.pingTimeout || 5000; // 5 seconds
    this.pingTimer = null;
    this.pongTimer = null;
  }

  connect() {
    this.socket = new WebSocket(this.url);
    this.socket.onopen = () => this.heartbeat();
    this.socket.onmessage = (event) => this.handleMessage(event);
    this.socket.onclose = () => this.cleanup();
  }

  heartbeat() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);

    this.pingTimer = setTimeout(() => {
      this.socket.send(JSON.stringify({ type: 'ping' }));
      this.pongTimer = setTimeout(() => {
        this.socket.close();
      }, this.pingTimeout);
    }, this.pingInterval);
  }

  handleMessage(event) {
    const data = JSON.parse(event.data);
    if (data.type === 'pong') {
      this.heartbeat();
    }
    // Handle other message types
  }

  cleanup() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}
