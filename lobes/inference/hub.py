"""Where a release lives: a local folder, or a Hugging Face hub id.

Hub ids are fetched with ``huggingface_hub.snapshot_download``, which keeps
them in the hub cache (``HF_HUB_CACHE``) and, under ``HF_HUB_OFFLINE=1``,
answers from that cache alone, as users of the hub expect.
"""

import os

from lobes.models.ssl import looks_like_local_path


def resolve_release_source(source, revision=None, cache_dir=None, patterns=None):
    """Local folder of ``source``: itself if it is a folder, else the snapshot
    of hub id ``source`` (only the files matching ``patterns``)."""
    source = str(source)
    expanded = os.path.expanduser(source)
    if os.path.isdir(expanded):
        return expanded
    if looks_like_local_path(source):
        raise FileNotFoundError(f"release folder {source} does not exist")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return snapshot_download(
            repo_id=source, revision=revision, cache_dir=cache_dir,
            allow_patterns=list(patterns) if patterns else None,
        )
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"release {source!r} is neither a local folder nor in the hub cache, and the hub "
            f"cannot be reached (HF_HUB_OFFLINE or no network): {err}"
        ) from err
    except (HfHubHTTPError, ValueError) as err:
        raise FileNotFoundError(f"cannot fetch release {source!r} from the hub: {err}") from err
