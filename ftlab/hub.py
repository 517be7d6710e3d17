"""Can the Hugging Face Hub be used? ftlab's one Hub probe, and how the environment forbids the Hub.

``hub_online`` asks the Hub (or the mirror ``HF_ENDPOINT`` names) the way the Hub client does, with a
short timeout, so a notebook offline (Kaggle's "Internet off", ``HF_HUB_OFFLINE=1``) learns it in about
a second instead of after the libraries' retries. ``ftlab.setup()`` reports it; loading a model or a data
set by Hub id asks it first.
"""

from __future__ import annotations

import os

TRUE = ("1", "ON", "YES", "TRUE")  # how huggingface_hub reads a flag


def hub_forced_offline() -> bool:
    """Whether the environment forbids the Hub: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (as huggingface_hub
    reads them), or HF_DATASETS_OFFLINE (as datasets does). Cached files may still be used."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(flag, "").strip().upper() in TRUE for flag in flags)


def hub_endpoint() -> str:
    """The Hub the libraries talk to: ``HF_ENDPOINT`` (a mirror) or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_online(timeout: float = 1.5) -> bool:
    """True when the Hub may be used: not forced offline, and ``hub_endpoint()`` answers within ``timeout``.

    ftlab's one Hub probe. It asks the way the Hub client does: over HTTP, through the proxy that
    HTTPS_PROXY / HTTP_PROXY / NO_PROXY name (urllib reads them as httpx does), to HF_ENDPOINT. Any
    HTTP answer counts as reachable; no answer in time (DNS included) does not.
    """
    import threading
    import urllib.error
    import urllib.request

    if hub_forced_offline():
        return False
    answered = []

    def probe():
        try:
            # an opener built now reads the proxy variables as they are now (urlopen's is built once)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler())
            opener.open(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:  # an error page is still the Hub (or its mirror) answering
            answered.append(True)
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)  # a DNS lookup ignores socket timeouts
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered)
