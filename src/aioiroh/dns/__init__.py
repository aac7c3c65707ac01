"""dns layer."""
