#!/usr/bin/env python3
"""Clones over SSH with libgit2 (through pygit2, on libssh2) and prints HEAD.

Usage: pygit2_clone.py URL DEST PUBKEY PRIVKEY
The server's host key is accepted only when libgit2 finds it in
$HOME/.ssh/known_hosts.
"""
import sys

import pygit2


class Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, pub, priv):
        super().__init__(credentials=pygit2.Keypair("git", pub, priv, ""))

    def certificate_check(self, certificate, valid, host):
        # libgit2 checks the host key against $HOME/.ssh/known_hosts itself and
        # says whether it matched; only a match is accepted.
        return bool(valid)


def main():
    url, dest, pub, priv = sys.argv[1:5]
    repo = pygit2.clone_repository(url, dest, callbacks=Callbacks(pub, priv))
    print(repo.head.target)


if __name__ == "__main__":
    main()
