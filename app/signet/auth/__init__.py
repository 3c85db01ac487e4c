"""Authentication: who the user is and how sure we are (passwords, OTP, PIN; LoA/AAL)."""
