#!/usr/bin/env python3
"""An ssh program for git (GIT_SSH, variant "ssh") built on paramiko.

git runs it as: paramiko_ssh.py [-p PORT] USER@HOST COMMAND
The key comes from PARAMIKO_KEY, the host key pin from PARAMIKO_KNOWN_HOSTS (an
OpenSSH known_hosts file). It copies stdin to the remote command and the
command's stdout and stderr back, and exits with the command's status.
"""
import os
import sys
import threading

import paramiko


def main():
    args = sys.argv[1:]
    port = 22
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt == "-p":
            port = int(args.pop(0))
        elif opt == "-o":
            args.pop(0)  # git passes -o SendEnv=GIT_PROTOCOL for protocol v2
    dest, command = args[0], " ".join(args[1:])
    user, _, host = dest.rpartition("@")
    client = paramiko.SSHClient()
    client.load_host_keys(os.environ["PARAMIKO_KNOWN_HOSTS"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key = paramiko.Ed25519Key.from_private_key_file(os.environ["PARAMIKO_KEY"])
    client.connect(host, port=port, username=user or "git", pkey=key,
                   allow_agent=False, look_for_keys=False)
    transport = client.get_transport()
    sys.stderr.write("paramiko cipher: %s\n" % transport.remote_cipher)
    chan = transport.open_session()
    chan.exec_command(command)

    def pump_in():
        while True:
            data = os.read(0, 65536)
            if not data:
                chan.shutdown_write()
                return
            chan.sendall(data)

    def pump_err():
        while True:
            data = chan.recv_stderr(65536)
            if not data:
                return
            os.write(2, data)

    threading.Thread(target=pump_in, daemon=True).start()
    err = threading.Thread(target=pump_err, daemon=True)
    err.start()
    while True:
        data = chan.recv(65536)
        if not data:
            break
        os.write(1, data)
    status = chan.recv_exit_status()
    err.join(5)
    client.close()
    sys.exit(status)


if __name__ == "__main__":
    main()
