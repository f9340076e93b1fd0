#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes the fuzz seed corpus (tests/fuzz/corpus/<target>/) from the golden
# bytes that the real protoc produced (tests/golden/*.bin), shaped for each
# target's input format. Run after adding golden cases; the output is
# checked in so every build replays it.
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
golden = os.path.join(here, '..', 'golden')
out = os.path.join(here, 'corpus')
ids = {'GetRouteRequest': 1, 'GetRouteResponse': 2, 'ReportStatusRequest': 3,
       'GetHostRequest': 4, 'GetHostResponse': 5, 'ReportRequest': 6,
       'RegisterRequest': 104, 'LeaseRequest': 107, 'LeaseResponse': 108}
# Only the original's ids go into the frame decoders' seeds.
original_ids = ('GetRouteRequest', 'GetRouteResponse', 'ReportStatusRequest',
                'GetHostRequest', 'GetHostResponse', 'ReportRequest')

bodies = {}
for name in sorted(os.listdir(golden)):
    if name.endswith('.bin'):
        with open(os.path.join(golden, name), 'rb') as f:
            bodies[name[:-4]] = f.read()


def frame(name):
    msg = name.split('_')[0]
    body = bodies[name]
    return struct.pack('<ii', ids[msg], len(body)) + body


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


framed = [n for n in bodies if n.split('_')[0] in original_ids]
for n in framed:
    write('frame-udp', n, frame(n))
    write('frame-tcp', n, bytes([7]) + frame(n))
write('frame-tcp', 'all-frames', bytes([1]) + b''.join(frame(n) for n in framed))


def dgram(data, tick=0):
    return struct.pack('<H', len(data)) + bytes([tick]) + data


gh = frame('GetHostRequest')             # seq 6634, 1/1
route = frame('GetRouteResponse')        # 1/1, three hosts
report = frame('ReportRequest')          # 1/1, 192.168.1.177:8080, retcode 1
fail_ok = struct.pack('<ii', 6, 17) + bytes.fromhex('080110011a0908818080f80710a9462002')
succ_ok = struct.pack('<ii', 6, 15) + bytes.fromhex('080110011a0908818080f80710a946')
write('agent', 'pull-update-pick', dgram(gh) + dgram(route) + dgram(gh) * 4)
write('agent', 'fail-probe-recover',
      dgram(gh) + dgram(route) + dgram(fail_ok) * 6 + dgram(gh) * 5 + dgram(succ_ok) * 5
      + dgram(gh, 80) + dgram(gh, 80))
write('agent', 'unknown-host-report', dgram(gh) + dgram(route) + dgram(report))

# dns: n_old, n_keys, old entries (4 B), keys (1 B), new entries (4 B), frames.
old = bytes([0, 0, 1, 1, 0, 0, 2, 2, 1, 1, 1, 1, 2, 0, 3, 3])
write('dns', 'patch-and-ask', bytes([4, 2]) + old + bytes([0, 1 | (1 << 3)])
      + bytes([0, 0, 9, 9, 1, 1, 8, 8]) + frame('GetRouteRequest')
      + frame('GetRouteRequest_empty'))
write('dns', 'remove-all', bytes([4, 8]) + old + bytes(range(8)))

write('reporter', 'status', frame('ReportStatusRequest'))
write('reporter', 'status-twice', frame('ReportStatusRequest') * 2)

confdir = os.path.join(here, '..', '..', 'deploy', 'conf')
for name in sorted(os.listdir(confdir)):
    with open(os.path.join(confdir, name), 'rb') as f:
        write('config', name, f.read())
write('config', 'typed', b'[a]\nint = 42\ndouble = 0.5\n[b]\nbool = yes\nstr = x\n'
      b'[c]\nservers = 127.0.0.1:1, [::1]:2\n')
write('config', 'errors', b'[a\nint = x\n  cont\n[b]\nbool\nstr = ' + b'y' * 300 + b'\n')
print('corpus written to', out, file=sys.stderr)


# fuzz-registry: an app registers (TCP check), lars-dns answers (seq 0 = the
# last request), checks pass (odd step byte) and fail, the app deregisters.
reg = frame('RegisterRequest')
dereg = struct.pack('<ii', 106, len(bodies['RegisterRequest'])) + bodies['RegisterRequest']
added = struct.pack('<ii', 108, 3) + bytes.fromhex('1a0100')      # result [0]: added
drained = struct.pack('<ii', 108, 3) + bytes.fromhex('1a0105')    # result [5]: drained
removed = struct.pack('<ii', 108, 3) + bytes.fromhex('1a0104')    # result [4]: removed
lost = struct.pack('<ii', 107, 0)
back = struct.pack('<ii', 102, 0)
write('registry', 'register-renew', dgram(reg, 1) + dgram(b'', 1) + dgram(added, 1) +
      dgram(b'', 11) * 6 + dgram(frame('LeaseResponse'), 1))
write('registry', 'check-fails-drain', dgram(reg, 1) + dgram(b'', 3) + dgram(added, 1) +
      dgram(b'', 4) * 4 + dgram(drained, 2) + dgram(b'', 5) * 4)
write('registry', 'deregister', dgram(reg, 1) + dgram(added, 1) + dgram(dereg, 1) +
      dgram(drained, 1) + dgram(b'', 7) + dgram(removed, 1) + dgram(dereg, 1))
write('registry', 'link-lost', dgram(reg, 1) + dgram(lost, 1) + dgram(b'', 40) +
      dgram(back, 1) + dgram(added, 1) + dgram(b'', 31))


# fuzz-shm: agent snapshots (common/wire/shm_snap.h, layout 1): 4 slots of
# up to 2 hosts; routes 1/1 (two hosts, one overloaded) and 2/1 (weighted,
# one drained), one slot deleted; and one with a slot left odd (being written).
def shm_hash(modid, cmdid, n):
    m = (1 << 64) - 1
    k = ((modid & 0xffffffff) << 32) | (cmdid & 0xffffffff)
    k ^= k >> 33
    k = (k * 0xff51afd7ed558ccd) & m
    k ^= k >> 33
    return k % n


def shm_file(routes, odd=False):
    n_slots, max_hosts = 4, 2
    slot_size = (48 + max_hosts * 24 + 63) & ~63
    size = 64 + n_slots * slot_size
    buf = bytearray(size)
    struct.pack_into('<QIIQIIIIiIq', buf, 0, 0x314d48535352414c, 1, 56, size, n_slots,
                     max_hosts, slot_size, 64, 4242, 10, 1700000000000)
    for modid, cmdid, state, flags, hosts in routes:
        i = shm_hash(modid, cmdid, n_slots)
        while struct.unpack_from('<I', buf, 64 + i * slot_size + 4)[0]:
            i = (i + 1) % n_slots
        off = 64 + i * slot_size
        struct.pack_into('<IIiiqQIIII', buf, off, 1 if odd else 2, state, modid, cmdid, 9, 1,
                         len(hosts), flags, 30, 0)
        for j, (port, weight, hstate, drain) in enumerate(hosts):
            struct.pack_into('<iiIBBxxq', buf, off + 48 + j * 24, 0x7f000001, port, weight,
                             hstate, drain, 1699999990)
    return bytes(buf)


write('shm', 'two-routes', shm_file([(1, 1, 1, 0, [(9001, 100, 0, 0), (9002, 100, 1, 0)]),
                                     (2, 1, 1, 2, [(9003, 300, 0, 0), (9004, 100, 0, 1)]),
                                     (3, 1, 2, 0, [])]))
write('shm', 'being-written', shm_file([(1, 1, 1, 0, [(9001, 100, 0, 0)])], odd=True))
