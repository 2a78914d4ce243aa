"""The host agent: chunk cache, peer server, downloader, installer. Never imports Ray."""
