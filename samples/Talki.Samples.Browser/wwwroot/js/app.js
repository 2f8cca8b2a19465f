// Small browser helpers of the Talki sample: Google Identity Services (loaded only when a client id is configured) and copy to clipboard.
window.talkiApp = {
  renderGoogleButton: (element, clientId, dotnet) => new Promise((resolve) => {
    const init = () => {
      try {
        google.accounts.id.initialize({
          client_id: clientId,
          callback: (response) => dotnet.invokeMethodAsync('OnGoogleCredential', response.credential),
        });
        google.accounts.id.renderButton(element, { theme: 'filled_black', size: 'large', shape: 'pill', text: 'signin_with', width: 280 });
        resolve(true);
      } catch {
        resolve(false);
      }
    };
    if (window.google && window.google.accounts && window.google.accounts.id) {
      init();
      return;
    }
    const script = document.createElement('script');
    script.src = 'https://accounts.google.com/gsi/client';
    script.async = true;
    script.onload = init;
    script.onerror = () => resolve(false);
    document.head.appendChild(script);
  }),
  copy: async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      return false;
    }
  },
};
window.talkiApp.selectRoomLink = () => document.querySelector('[data-testid="room-link"]')?.select();
