// sipwarden test phone: the page's behaviour. Element ids and log texts
// are documented at the top of index.html; tests depend on them.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    account: $('account'),
    phone: $('phone'),
    server: $('server'),
    domain: $('domain'),
    user: $('user'),
    password: $('password'),
    token: $('token'),
    register: $('register'),
    unregister: $('unregister'),
    target: $('target'),
    call: $('call'),
    answer: $('answer'),
    hangup: $('hangup'),
    regStatus: $('reg-status'),
    callStatus: $('call-status'),
    log: $('log'),
    audio: $('remote-audio'),
  };

  const media = { audio: true, video: false };
  // No STUN or TURN: host candidates only (the browser and the other
  // party reach each other directly, as on a LAN or loopback).
  const pcConfig = { iceServers: [] };

  let ua = null; // JsSIP.UA
  let session = null; // the current JsSIP.RTCSession

  function log(text, isError) {
    const li = document.createElement('li');
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toISOString().slice(11, 23);
    li.append(time, ' ', text);
    if (isError) {
      li.className = 'error';
    }
    el.log.append(li);
    el.log.scrollTop = el.log.scrollHeight;
  }

  // codeOf returns " (CODE REASON)" for a SIP response, or "".
  function codeOf(msg) {
    if (msg && msg.status_code) {
      return ` (${msg.status_code} ${msg.reason_phrase || ''})`.replace(' )', ')');
    }
    return '';
  }

  function setReg(state) {
    el.regStatus.value = state;
    document.body.dataset.reg = state;
    el.unregister.disabled = state !== 'registered';
  }

  function setCall(state) {
    el.callStatus.value = state;
    document.body.dataset.call = state;
    const busy = !['idle', 'ended', 'failed'].includes(state);
    el.call.disabled = busy;
    el.answer.disabled = state !== 'incoming';
    el.hangup.disabled = !busy;
  }

  // defaultServer is this page's host on the server's ws port (wss on an
  // https page): the ports the server wrote into the sipwarden-ws-ports
  // meta tag ("WS WSS"; 5066 7443 when it is missing).
  function defaultServer() {
    let host = location.hostname || '127.0.0.1';
    if (host.includes(':') && !host.startsWith('[')) {
      host = `[${host}]`;
    }
    const meta = document.querySelector('meta[name="sipwarden-ws-ports"]');
    const [ws, wss] = ((meta && meta.content) || '5066 7443').split(' ');
    return location.protocol === 'https:' ? `wss://${host}:${wss || 7443}` : `ws://${host}:${ws || 5066}`;
  }

  function stopUA() {
    if (ua) {
      ua.removeAllListeners();
      ua.stop();
      ua = null;
      setReg('unregistered');
    }
  }

  // startUA connects to the server, and registers when register is true.
  // It returns null (and logs why) when the settings are unusable.
  function startUA(register) {
    stopUA();
    if (!window.JsSIP) {
      log('JsSIP did not load (jssip.min.js)', true);
      return null;
    }
    const server = el.server.value.trim();
    const domain = el.domain.value.trim();
    const user = el.user.value.trim();
    const token = el.token.value.trim();
    const password = el.password.value;
    if (!server || !domain) {
      log('fill in the server URL and the SIP domain', true);
      return null;
    }
    if (register && !user) {
      log('fill in the username to register', true);
      return null;
    }
    const config = {
      uri: `sip:${user || 'anonymous'}@${domain}`,
      register,
      user_agent: `sipwarden test phone (JsSIP ${JsSIP.version})`,
    };
    if (token) {
      config.authorization_jwt = /^Bearer /i.test(token) ? token : `Bearer ${token}`;
    } else if (password) {
      config.password = password;
    }
    let next;
    try {
      config.sockets = [new JsSIP.WebSocketInterface(server)];
      next = new JsSIP.UA(config);
    } catch (e) {
      // Name the setting, never its value (it may be a secret).
      const what = e && e.parameter ? `the ${e.parameter} setting is not valid` : 'the settings are not valid';
      log(`configuration error: ${what}`, true);
      return null;
    }
    next.on('connecting', () => {
      log(`connecting to ${server}`);
      if (register) {
        setReg('connecting');
      }
    });
    next.on('connected', () => log('connected'));
    next.on('disconnected', () => log('disconnected'));
    next.on('registered', (e) => {
      log(`registered${codeOf(e.response)}`);
      setReg('registered');
    });
    next.on('unregistered', (e) => {
      log(`unregistered${e && e.cause ? `: ${e.cause}` : ''}${codeOf(e && e.response)}`);
      setReg('unregistered');
    });
    next.on('registrationFailed', (e) => {
      log(`registrationFailed: ${e.cause}${codeOf(e.response)}`, true);
      setReg('failed');
    });
    next.on('newRTCSession', (e) => {
      if (e.originator === 'remote') {
        incoming(e.session);
      }
    });
    ua = next;
    ua.start();
    return ua;
  }

  function whenConnected(u, ms) {
    return new Promise((resolve, reject) => {
      if (u.isConnected()) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        u.removeListener('connected', onConnected);
        reject(new Error(`not connected after ${ms / 1000} s`));
      }, ms);
      function onConnected() {
        clearTimeout(timer);
        resolve();
      }
      u.once('connected', onConnected);
    });
  }

  function attachMedia(pc) {
    pc.addEventListener('track', (ev) => {
      if (ev.track.kind !== 'audio') {
        return;
      }
      el.audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      el.audio.play().catch(() => {}); // autoplay policy: the call goes on silently
    });
  }

  // handlers are the events of a session, incoming or outgoing.
  const handlers = {
    peerconnection: (e) => attachMedia(e.peerconnection),
    progress: (e) => {
      if (e.originator === 'remote' && e.response) {
        log(`progress: ${e.response.status_code} ${e.response.reason_phrase}`);
        setCall('ringing');
      }
    },
    accepted: () => log('accepted'),
    confirmed: () => {
      log('confirmed');
      setCall('confirmed');
    },
    ended: (e) => {
      log(`ended: ${e.cause}`);
      session = null;
      setCall('ended');
    },
    failed: (e) => {
      log(`failed: ${e.cause}${codeOf(e.message)}`, true);
      session = null;
      setCall('failed');
    },
  };

  function incoming(s) {
    const from = s.remote_identity.uri.toString();
    if (session) {
      s.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      log(`rejected call from ${from}: busy`);
      return;
    }
    session = s;
    for (const [name, fn] of Object.entries(handlers)) {
      s.on(name, fn);
    }
    log(`incoming call from ${from}`);
    setCall('incoming');
  }

  async function call() {
    const target = el.target.value.trim();
    if (!target) {
      log('fill in the user or number to call', true);
      return;
    }
    if (!ua && !startUA(false)) {
      return;
    }
    const u = ua;
    let uri = target;
    if (!/^sips?:/i.test(uri)) {
      uri = uri.includes('@') ? `sip:${uri}` : `sip:${uri}@${el.domain.value.trim()}`;
    }
    setCall('calling');
    try {
      await whenConnected(u, 10000);
      log(`calling ${uri}`);
      session = u.call(uri, {
        mediaConstraints: media,
        pcConfig,
        eventHandlers: handlers,
        anonymous: !el.user.value.trim(),
      });
    } catch (e) {
      log(`failed: ${e.message}`, true);
      session = null;
      setCall('failed');
    }
  }

  el.account.addEventListener('submit', (ev) => {
    ev.preventDefault();
    startUA(true);
  });
  el.unregister.addEventListener('click', () => {
    if (ua) {
      log('unregistering');
      ua.unregister();
    }
  });
  el.phone.addEventListener('submit', (ev) => {
    ev.preventDefault();
    call();
  });
  el.answer.addEventListener('click', () => {
    if (session) {
      log('answering');
      setCall('answering');
      session.answer({ mediaConstraints: media, pcConfig });
    }
  });
  el.hangup.addEventListener('click', () => {
    if (session) {
      log('hanging up');
      session.terminate();
    }
  });
  window.addEventListener('pagehide', stopUA);

  // Prefill: defaults, then the query string (never a secret, and never
  // the server: a link naming another one would send the user's token or
  // digest answer there; the page's CSP allows only this server anyway).
  const q = new URLSearchParams(location.search);
  el.server.value = defaultServer();
  el.domain.value = q.get('domain') || location.hostname || '';
  el.user.value = q.get('user') || '';
  el.target.value = q.get('target') || '';
  setReg('unregistered');
  setCall('idle');
  log(window.JsSIP ? `ready (JsSIP ${JsSIP.version})` : 'JsSIP did not load (jssip.min.js)', !window.JsSIP);

  // For tests and the console: the current UA and session.
  window.sipwardenPhone = {
    get ua() { return ua; },
    get session() { return session; },
  };
})();
