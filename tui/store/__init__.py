"""What the app keeps on disk: saved chats, Complete and terminal sessions, app state."""
