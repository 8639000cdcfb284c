"""Runs an os-ken application (os-ken ships no manager script): listens for switches on
127.0.0.1:PORT and runs until killed.

Usage: python launch.py PORT APP.py   (XS_OSKEN_OF=1.0 for the OpenFlow 1.0 variant of the
learning switch). Prints `listening <port>` once the listener is up.
"""

import logging
import socket
import sys
import threading
import time


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: launch.py PORT APP.py")
    port, app = int(sys.argv[1]), sys.argv[2]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="osken %(levelname)s %(name)s: %(message)s")
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    import os_ken.controller.controller  # noqa: F401  (registers the ofp-* options)

    cfg.CONF(args=["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(port)], project="os_ken")

    def announce():
        # Up when the listener accepts; this probe connection closes at once, which os-ken
        # logs and forgets.
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                print("listening", port, flush=True)
                return
            except OSError:
                time.sleep(0.1)

    threading.Thread(target=announce, daemon=True).start()
    AppManager.run_apps([app])


if __name__ == "__main__":
    main()
