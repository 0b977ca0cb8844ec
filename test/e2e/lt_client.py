#!/usr/bin/python3
"""libtorrent peer for Herald's end-to-end tests (Debian's python3-libtorrent).

  lt_client.py make   <file> <torrent-out> <tracker-url> [v1|hybrid] [private]  create a .torrent
                                                              (private: BEP 27 flag set)
  lt_client.py seed   <torrent> <dir> <listen-ip> <timeout>     seed until killed or timeout
  lt_client.py fetch  <torrent> <dir> <listen-ip> <timeout>     download, exit 0 when complete
  options after <timeout>: graceful (SIGTERM: announce event=stopped, then exit 0);
                           linger=SECONDS (fetch: seed that long after completing, then stop)

DHT, local service discovery, UPnP, NAT-PMP and peer exchange are off, so the tracker is the only
way peers can meet. Progress lines go to stdout as JSON.
"""
import json
import os
import signal
import sys
import time

import libtorrent as lt


def session(listen_ip):
    host = f'[{listen_ip}]' if ':' in listen_ip else listen_ip
    settings = {
        'listen_interfaces': f'{host}:0',
        'enable_dht': False,
        'enable_lsd': False,
        'enable_upnp': False,
        'enable_natpmp': False,
        'enable_incoming_utp': True,
        'enable_outgoing_utp': True,
        # Loopback tests: every peer shares one address.
        'allow_multiple_connections_per_ip': True,
        'announce_to_all_trackers': True,
        'announce_to_all_tiers': True,
        'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
        # Announce to the tracker on loopback, and don't wait long between attempts.
        'min_announce_interval': 1,
        'tracker_backoff': 0,
    }
    # flags=0: no default plugins, so no ut_pex (peer exchange) and no ut_metadata.
    s = lt.session(settings, 0)
    return s


def emit(**kw):
    print(json.dumps(kw), flush=True)


def make(path, out, tracker, kind, private=False):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # Transmission 3 and aria2 1.36 read v1 torrents only; libtorrent 2 makes hybrids by default.
    flags = lt.create_torrent.v1_only if kind == 'v1' else 0
    t = lt.create_torrent(fs, 16 * 1024, flags=flags)
    t.add_tracker(tracker)
    if private:
        t.set_priv(True)
    lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
    with open(out, 'wb') as f:
        f.write(lt.bencode(t.generate()))
    ti = lt.torrent_info(out)
    emit(event='made', infoHash=str(ti.info_hashes().v1))


def run(mode, torrent, save, listen_ip, timeout, options=()):
    """options: 'graceful' (SIGTERM stops the torrent with event=stopped before exiting) and, for
    fetch, 'linger=SECONDS' (keep seeding that long after completing, then stop with
    event=stopped, so the tracker hears event=completed and the final counters)."""
    linger = None
    graceful = False
    for o in options:
        if o == 'graceful':
            graceful = True
        elif o.startswith('linger='):
            linger = float(o[len('linger='):])
        else:
            raise SystemExit(f'unknown option {o}')
    stop = []
    if graceful:
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    s = session(listen_ip)
    ti = lt.torrent_info(torrent)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save
    if mode == 'seed':
        atp.flags |= lt.torrent_flags.seed_mode
    h = s.add_torrent(atp)
    deadline = time.time() + timeout
    last = 0
    completed_at = None

    def alerts():
        for a in s.pop_alerts():
            if isinstance(a, (lt.tracker_error_alert, lt.tracker_reply_alert, lt.tracker_warning_alert)):
                emit(event='tracker', kind=type(a).__name__, message=a.message())

    while time.time() < deadline and not stop:
        alerts()
        st = h.status()
        if time.time() - last > 1:
            last = time.time()
            emit(event='status', state=str(st.state), progress=st.progress, peers=st.num_peers,
                 seeds=st.num_seeds, listen=s.listen_port(), done=st.total_done,
                 downloaded=st.total_payload_download, uploaded=st.total_payload_upload)
        if mode == 'fetch' and st.is_seeding and completed_at is None:
            emit(event='complete')
            if linger is None:
                return 0
            completed_at = time.time()
        if completed_at is not None and time.time() - completed_at >= linger:
            break
        time.sleep(0.1)
    if stop or completed_at is not None:
        # Pausing sends event=stopped with the final counters; give the tracker time to answer.
        st = h.status()
        emit(event='stopping', downloaded=st.total_payload_download, uploaded=st.total_payload_upload)
        h.pause()
        end = time.time() + 3
        while time.time() < end:
            alerts()
            time.sleep(0.1)
        emit(event='stopped')
        return 0
    emit(event='timeout')
    return 0 if mode == 'seed' else 1


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make':
        make(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else 'hybrid',
             len(sys.argv) > 6 and sys.argv[6] == 'private')
        sys.exit(0)
    sys.exit(run(cmd, sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6:]))
