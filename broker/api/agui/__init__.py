"""AG-UI: the protocol CopilotKit speaks, on top of the broker's runs and interrupts."""

from broker.api.agui.messages import new_input_messages, to_agui_messages
from broker.api.agui.translate import Translator

__all__ = ["Translator", "new_input_messages", "to_agui_messages"]
